//! archc's runtime: the reference interpreter ([`interp`]), tensor values
//! as the bytes a built library reads ([`elements`], [`npy`] files), and
//! loading, calling and timing a built library ([`native`]).

pub mod compare;
pub mod elements;
pub mod interp;
pub mod native;
pub mod npy;
