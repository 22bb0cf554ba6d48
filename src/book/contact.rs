//! A contact as the plugin keeps it: what caller ID needs of a Google person, with every
//! number already normalised, so that storing, indexing and looking up never parse again.

use crate::book::phone::{NationalKey, E164};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// Google's `resourceName` ("people/c123…"): the key incremental syncs update by.
    pub resource_name: String,
    /// What the phone shows: the display name, else the organization, else the first email
    /// address, else "".
    pub name: String,
    /// The organization, or "".
    pub company: String,
    pub numbers: Vec<ContactNumber>,
    /// The contact groups it is a member of, by resource name ("contactGroups/…"), system
    /// groups included; their names come with the account's groups.
    pub groups: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactNumber {
    pub e164: E164,
    pub national: NationalKey,
    /// Google's type of the number ("mobile", "work", …) or "".
    pub label: String,
}

/// Where an account's contacts come from. Each source syncs on its own (its own sync token,
/// its own transaction, its own book in the index); a lookup tries them in this order, the
/// contract's: the contacts a user saved, then the organisation's directory, then the
/// people the user only wrote to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// `people/me/connections`: the account's own Google Contacts.
    Contacts = 0,
    /// `people:listDirectoryPeople`: a Google Workspace organisation's colleagues and shared
    /// contacts.
    Directory = 1,
    /// `otherContacts`: people the user wrote to but never saved.
    OtherContacts = 2,
}

impl Source {
    /// Every source, in lookup order (`Source as usize` is the position).
    pub const ALL: [Source; 3] = [Source::Contacts, Source::Directory, Source::OtherContacts];

    /// The name the configuration, the status and `GiContact.source` use.
    pub fn name(self) -> &'static str {
        match self {
            Source::Contacts => "contacts",
            Source::Directory => "directory",
            Source::OtherContacts => "other_contacts",
        }
    }

    pub fn from_name(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.name() == name)
    }

    /// What the source is, in messages to an administrator.
    pub fn noun(self) -> &'static str {
        match self {
            Source::Contacts => "the contacts",
            Source::Directory => "the Workspace directory",
            Source::OtherContacts => "the other contacts",
        }
    }
}
