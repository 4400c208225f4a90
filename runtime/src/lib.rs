//! archc's runtime. Built so far: [`interp`], the reference interpreter
//! that evaluates a workload's semantic model directly; built libraries
//! (`archc build`/`archc run`) will be checked against it.

pub mod interp;
