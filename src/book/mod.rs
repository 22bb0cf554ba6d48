//! The address book as lookups see it: numbers read and normalised (`phone`), contacts as the
//! plugin keeps them (`contact`), and the in-memory caller-ID index (`numbers`). Plain data and
//! algorithms: nothing here touches the network, the database or C.

pub mod contact;
pub mod numbers;
pub mod phone;
