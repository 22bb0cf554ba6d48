//! What both stores do with the rows of stored contacts they read: gather them into one
//! `Loaded` for each (account, source), and read a contact's groups as stored.

use super::Loaded;
use crate::book::contact::Source;

/// Rows ordered by account and source, gathered into one `Loaded` a run, each run handed to
/// `each` once complete: what every reader of the stored contacts (SQLite's join,
/// PostgreSQL's rows and its COPY stream) does with its rows.
pub(super) struct Runs<'e> {
    current: Option<(String, Source, Loaded)>,
    each: &'e mut dyn FnMut(String, Source, Loaded),
}

impl<'e> Runs<'e> {
    pub(super) fn new(each: &'e mut dyn FnMut(String, Source, Loaded)) -> Runs<'e> {
        Runs {
            current: None,
            each,
        }
    }

    /// The run a row of `account`'s `source_name` belongs to, begun when the row begins it
    /// (handing the one before on); None for a source this version does not know (a newer
    /// plugin's), which is not indexed.
    pub(super) fn run_of(&mut self, account: &str, source_name: &str) -> Option<&mut Loaded> {
        if self
            .current
            .as_ref()
            .is_none_or(|(a, s, _)| a != account || s.name() != source_name)
        {
            if let Some((done, source, loaded)) = self.current.take() {
                (self.each)(done, source, loaded);
            }
            let source = Source::from_name(source_name)?;
            self.current = Some((account.to_owned(), source, Loaded::default()));
        }
        self.current.as_mut().map(|(_, _, loaded)| loaded)
    }

    /// Hands the last run on.
    pub(super) fn finish(mut self) {
        if let Some((done, source, loaded)) = self.current.take() {
            (self.each)(done, source, loaded);
        }
    }
}

/// A contact's groups as stored: one resource name a line.
pub(super) fn split_groups(stored: &str) -> Vec<String> {
    stored
        .split('\n')
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}
