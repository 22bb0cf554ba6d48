//! The address book as lookups see it: numbers read and normalised (`phone`), contacts as the
//! plugin keeps them (`contact`), the in-memory caller-ID index (`numbers`) and, inside it,
//! the address book's search index (`names`, over the folded text of `fold`), a large one
//! built on two threads (`beside`, with threads kept for it: `helpers`). Plain data and
//! algorithms: nothing here touches the network, the database or C.

mod beside;
pub mod contact;
pub mod fold;
mod helpers;
pub mod names;
pub mod numbers;
pub mod patch;
pub mod phone;

pub use helpers::HelperThreads;
