//! The People API's lists of people, as the sync uses them (`people/me/connections`,
//! `otherContacts` and `people:listDirectoryPeople`, one per contact source): one page at a
//! time (its failures sorted by `api`), and Google's person shape turned into the plugin's
//! `Contact` with its numbers normalised.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;

use super::api::{self, Api, ApiError};
use super::http::HttpClient;
use crate::book::contact::{Contact, ContactNumber, Source};
use crate::book::phone::RegionRules;

/// Fields the sync asks for: what caller ID shows, plus metadata for deletions.
pub const PERSON_FIELDS: &str =
    "names,phoneNumbers,organizations,emailAddresses,memberships,metadata";
/// Other contacts carry no organizations or memberships: Google refuses them in the mask.
pub const OTHER_CONTACTS_MASK: &str = "names,phoneNumbers,emailAddresses,metadata";
/// The directory has no memberships (contact groups are a user's own).
pub const DIRECTORY_MASK: &str = "names,phoneNumbers,organizations,emailAddresses,metadata";
/// The directory's two halves: the organisation's users and its shared contacts.
pub const DIRECTORY_SOURCES: [&str; 2] = [
    "DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE",
    "DIRECTORY_SOURCE_TYPE_DOMAIN_CONTACT",
];
/// What a sync of `source` asks Google for besides paging (the fields, and the directory's
/// halves), and the region its numbers without Google's `canonicalForm` are read in: the two
/// things a stored sync token's contacts depend on. Google serves a sync token only to the
/// request that earned it ("all other request parameters must match the first call"), and
/// people that did not change since keep what they were fetched with; so a token earned
/// asking for other fields (an older release's: 0.1 asked for no memberships or email
/// addresses) is not used, and the source syncs in full. So too after the region changes
/// (`default_region`, a domain's `region`): the stored numbers were read in the old one,
/// and an incremental sync would keep them so for good, the contacts that did not change
/// answering to the wrong country's calls.
pub fn asked_of(source: Source, region: &RegionRules) -> String {
    let request = match source {
        Source::Contacts => format!("personFields={PERSON_FIELDS}"),
        Source::OtherContacts => format!("readMask={OTHER_CONTACTS_MASK}"),
        Source::Directory => format!(
            "readMask={DIRECTORY_MASK}&sources={}",
            DIRECTORY_SOURCES.join(",")
        ),
    };
    format!("{request}{REGION_MARK}{}", region.region())
}

/// Where `asked_of` names the region.
const REGION_MARK: &str = "&region=";

/// The region a stored `asked_of` read numbers in: None for one that names none (stored
/// before the region was part of it).
pub fn region_of_asked(asked: &str) -> Option<&str> {
    asked.rsplit_once(REGION_MARK).map(|(_, region)| region)
}

/// The largest page the API serves.
pub const PAGE_SIZE: u32 = 1000;

/// One page of connections.
pub struct Page {
    pub people: Vec<Person>,
    pub next_page_token: Option<String>,
    pub next_sync_token: Option<String>,
}

/// A page of any of the three lists: each names its people differently. Only the source's
/// own list is read; the others must not be there, and are ignored if they are.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPage {
    connections: Option<Vec<Box<RawValue>>>,
    other_contacts: Option<Vec<Box<RawValue>>>,
    people: Option<Vec<Box<RawValue>>>,
    next_page_token: Option<String>,
    next_sync_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    resource_name: String,
    #[serde(default)]
    metadata: PersonMetadata,
    #[serde(default)]
    names: Vec<Name>,
    #[serde(default)]
    phone_numbers: Vec<PhoneNumber>,
    #[serde(default)]
    organizations: Vec<Organization>,
    #[serde(default)]
    email_addresses: Vec<EmailAddress>,
    #[serde(default)]
    memberships: Vec<Membership>,
}

#[derive(Deserialize)]
struct EmailAddress {
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Membership {
    contact_group_membership: Option<ContactGroupMembership>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContactGroupMembership {
    contact_group_resource_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PersonMetadata {
    #[serde(default)]
    deleted: bool,
    /// The names the person had before, in an incremental sync: Google gives a contact a new
    /// resource name when it links it to a profile (a verified email or phone number), and
    /// documents no tombstone under the old one.
    #[serde(default)]
    previous_resource_names: Vec<String>,
}

#[derive(Deserialize, Default)]
struct FieldMetadata {
    #[serde(default)]
    primary: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Name {
    display_name: Option<String>,
    #[serde(default)]
    metadata: FieldMetadata,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhoneNumber {
    value: Option<String>,
    canonical_form: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Organization {
    name: Option<String>,
    #[serde(default)]
    metadata: FieldMetadata,
}

/// What one person of a reply does to the stored contacts.
pub enum Change {
    Upsert(Contact),
    Delete(String),
}

impl Person {
    /// The resource names this person had before (see `PersonMetadata`): each is gone, as if
    /// deleted, or the contact would be stored twice, once under each name, and the old copy
    /// would answer lookups until the next full sync.
    pub fn previous_resource_names(&self) -> &[String] {
        &self.metadata.previous_resource_names
    }

    pub fn resource_name(&self) -> &str {
        &self.resource_name
    }

    /// The change this person makes, with every number normalised in `region` (Google's
    /// `canonicalForm` first). Numbers that are not numbers at all are dropped.
    pub fn into_change(self, region: &RegionRules) -> Change {
        if self.metadata.deleted {
            return Change::Delete(self.resource_name);
        }
        let mut numbers: Vec<ContactNumber> = Vec::with_capacity(self.phone_numbers.len());
        for phone in &self.phone_numbers {
            let Some(value) = phone.value.as_deref() else {
                continue;
            };
            let Some(stored) = region.normalise_stored(value, phone.canonical_form.as_deref())
            else {
                continue;
            };
            if numbers.iter().any(|n| n.e164 == stored.e164) {
                continue; // the same number twice on one contact adds nothing
            }
            numbers.push(ContactNumber {
                e164: stored.e164,
                national: stored.national,
                label: phone.kind.clone().unwrap_or_default(),
            });
        }
        let company = primary(&self.organizations, |o| &o.metadata)
            .and_then(|o| o.name.clone())
            .unwrap_or_default();
        let display = primary(&self.names, |n| &n.metadata)
            .and_then(|n| n.display_name.clone())
            .filter(|n| !n.trim().is_empty());
        // The contract's order: the name, else the company, else the first email address
        // (the first that has one: not the one Google marks primary).
        let name = display
            .or_else(|| Some(company.clone()).filter(|c| !c.trim().is_empty()))
            .or_else(|| {
                self.email_addresses
                    .iter()
                    .find_map(|e| e.value.clone().filter(|v| !v.trim().is_empty()))
            })
            .unwrap_or_default();
        let groups = self
            .memberships
            .into_iter()
            .filter_map(|m| m.contact_group_membership?.contact_group_resource_name)
            .collect();
        Change::Upsert(Contact {
            resource_name: self.resource_name,
            name,
            company,
            numbers,
            groups,
        })
    }
}

/// The field Google marks primary, else the first.
fn primary<T>(items: &[T], metadata: impl Fn(&T) -> &FieldMetadata) -> Option<&T> {
    items
        .iter()
        .find(|item| metadata(item).primary)
        .or_else(|| items.first())
}

/// The names of the user's own contact groups ("contactGroups/…" → "Customers"), every page
/// of `contactGroups`; system groups (myContacts, starred, …) are left out, never shown.
pub fn fetch_group_names(
    http: &HttpClient,
    people_url: &Url,
    access_token: &str,
) -> Result<HashMap<String, String>, ApiError> {
    let mut names = HashMap::new();
    let mut page_token: Option<String> = None;
    let mut seen = HashSet::new();
    loop {
        let mut url = people_url.clone();
        url.set_path(&format!(
            "{}/v1/contactGroups",
            people_url.path().trim_end_matches('/')
        ));
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("pageSize", &PAGE_SIZE.to_string());
            if let Some(token) = &page_token {
                query.append_pair("pageToken", token);
            }
        }
        let body = get(http, people_url, url, access_token)?;
        let page: GroupsPage =
            serde_json::from_slice(&body).map_err(|e| ApiError::Transient {
                message: format!(
                    "the People API sent contact groups that are not the expected JSON ({}); nothing was changed",
                    api::json_fault(&e)
                ),
                retry_after: None,
                quota_exhausted: false,
            })?;
        for group in page.contact_groups {
            if group.group_type.as_deref() == Some("USER_CONTACT_GROUP") {
                if let (Some(resource), Some(name)) = (group.resource_name, group.name) {
                    names.insert(resource, name);
                }
            }
        }
        // Pages that lead in circles or never end are not Google's. Stopping there and
        // taking what came as all the groups, as this did, landed a partial list: every
        // group past the cut lost its name, and with `contact_groups` set its contacts
        // dropped out of lookups, while the account looked green. So the sync stops and
        // changes nothing, as it does for the contacts' own pages.
        let Some(next) = page.next_page_token.filter(|t| !t.is_empty()) else {
            return Ok(names);
        };
        if seen.len() + 1 >= MAX_GROUP_PAGES {
            return Err(ApiError::Refused(format!(
                "the People API sent more than {MAX_GROUP_PAGES} pages of contact groups (over {} groups, more than Google lets a user make); the sync stopped and nothing was changed. Press Sync now to retry; if it persists, something between the PBX and Google alters the replies",
                MAX_GROUP_PAGES * PAGE_SIZE as usize
            )));
        }
        if !seen.insert(next.clone()) {
            return Err(ApiError::Refused(format!(
                "the People API sent a contact-groups page token it had sent before, so its pages never end; the sync stopped after {} pages of groups and nothing was changed. Press Sync now to retry; if it persists, something between the PBX and Google alters the replies",
                seen.len() + 1
            )));
        }
        page_token = Some(next);
    }
}

/// Contact groups come a thousand a page; no account has a hundred pages of them.
const MAX_GROUP_PAGES: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupsPage {
    #[serde(default)]
    contact_groups: Vec<ContactGroup>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContactGroup {
    resource_name: Option<String>,
    name: Option<String>,
    group_type: Option<String>,
}

/// One GET to the People API through the bounded client.
fn get(
    http: &HttpClient,
    people_url: &Url,
    url: Url,
    access_token: &str,
) -> Result<Vec<u8>, ApiError> {
    let request = http.requests().get(url).bearer_auth(access_token);
    api::send(http, Api::People, people_url, request)
}

/// The People API behind a source, for messages that name it and its fixes.
pub fn api_of(source: Source) -> Api {
    match source {
        Source::Contacts => Api::People,
        Source::Directory => Api::Directory,
        Source::OtherContacts => Api::OtherContacts,
    }
}

/// Fetches one page of a source's people: all of them (`sync_token` None) or the changes since
/// `sync_token`.
pub fn fetch_page(
    http: &HttpClient,
    people_url: &Url,
    source: Source,
    access_token: &str,
    sync_token: Option<&str>,
    page_token: Option<&str>,
) -> Result<Page, ApiError> {
    let path = match source {
        Source::Contacts => "people/me/connections",
        Source::Directory => "people:listDirectoryPeople",
        Source::OtherContacts => "otherContacts",
    };
    let mut url = people_url.clone();
    url.set_path(&format!(
        "{}/v1/{path}",
        people_url.path().trim_end_matches('/')
    ));
    {
        let mut query = url.query_pairs_mut();
        match source {
            Source::Contacts => query.append_pair("personFields", PERSON_FIELDS),
            Source::OtherContacts => query.append_pair("readMask", OTHER_CONTACTS_MASK),
            Source::Directory => {
                for kind in DIRECTORY_SOURCES {
                    query.append_pair("sources", kind);
                }
                query.append_pair("readMask", DIRECTORY_MASK)
            }
        };
        query
            .append_pair("pageSize", &PAGE_SIZE.to_string())
            .append_pair("requestSyncToken", "true");
        if let Some(token) = sync_token {
            query.append_pair("syncToken", token);
        }
        if let Some(token) = page_token {
            query.append_pair("pageToken", token);
        }
    }
    let request = http.requests().get(url).bearer_auth(access_token);
    parse_page(
        source,
        &api::send(http, api_of(source), people_url, request)?,
    )
}

/// A page whose shape is Google's; a person in it that is not (no resource name, a field of
/// the wrong type) is skipped and logged rather than failing the whole sync.
pub fn parse_page(source: Source, body: &[u8]) -> Result<Page, ApiError> {
    let raw: RawPage = serde_json::from_slice(body).map_err(|e| ApiError::Transient {
        message: format!(
            "the People API sent a reply that is not the expected JSON ({}); nothing was changed",
            api::json_fault(&e)
        ),
        retry_after: None,
        quota_exhausted: false,
    })?;
    let listed = match source {
        Source::Contacts => raw.connections,
        Source::Directory => raw.people,
        Source::OtherContacts => raw.other_contacts,
    }
    .unwrap_or_default();
    let mut people = Vec::with_capacity(listed.len());
    for (at, person) in listed.iter().enumerate() {
        match serde_json::from_str::<Person>(person.get()) {
            Ok(person) => people.push(person),
            // The person's text is not logged: it is someone's contact data (nor is serde's
            // message, which quotes it: see `json_fault`).
            Err(e) => log::warn!(
                "the People API sent a malformed person (#{} of a page of {}: {} of its JSON); it is skipped",
                at + 1,
                source.noun(),
                api::json_fault(&e)
            ),
        }
    }
    Ok(Page {
        people,
        next_page_token: raw.next_page_token.filter(|t| !t.is_empty()),
        next_sync_token: raw.next_sync_token.filter(|t| !t.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_with_a_field_of_the_wrong_type_is_an_error_not_an_empty_page() {
        assert!(parse_page(Source::Contacts, br#"{"connections":"oops"}"#).is_err());
        assert!(parse_page(
            Source::Contacts,
            br#"{"connections":[{"resourceName":"people/c1""#
        )
        .is_err());
        assert!(parse_page(Source::Contacts, br#"{"totalPeople":0}"#).is_ok());
    }

    #[test]
    fn a_contact_without_name_or_company_shows_its_first_email_address() {
        let us = RegionRules::new("US").unwrap();
        let name = |emails: &str| {
            let person: Person = serde_json::from_str(&format!(
                r#"{{"resourceName":"people/c1","phoneNumbers":[{{"value":"+12125550100"}}],"emailAddresses":{emails}}}"#
            ))
            .unwrap();
            match person.into_change(&us) {
                Change::Upsert(contact) => contact.name,
                _ => panic!("an upsert"),
            }
        };
        assert_eq!(
            name(
                r#"[{"value":"first@x.org"},{"value":"second@x.org","metadata":{"primary":true}}]"#
            ),
            "first@x.org"
        );
        assert_eq!(
            name(r#"[{"metadata":{"primary":true}},{"value":" "},{"value":"b@x.org"}]"#),
            "b@x.org"
        );
        assert_eq!(name("[]"), "");
    }

    #[test]
    fn a_malformed_person_is_skipped_and_the_others_kept() {
        let Ok(page) = parse_page(
            Source::Contacts,
            br#"{"connections":[{"resourceName":"people/c1","names":"x"},{"names":[]},7,{"resourceName":"people/c2"}]}"#,
        ) else {
            panic!("the page is kept")
        };
        let names: Vec<&str> = page
            .people
            .iter()
            .map(|p| p.resource_name.as_str())
            .collect();
        assert_eq!(names, ["people/c2"]);
    }
}
