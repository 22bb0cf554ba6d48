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
