//! Analytic cost models, one per hardware class, behind one interface:
//! evaluate a concrete schedule of one op and get cycles, latency, energy,
//! bytes and time per memory level, utilization, the bottleneck and a
//! speed-of-light lower bound ([`report::Predicted`]).
//!
//! Built so far: the contraction view of ops ([`gemm`]), the cpu roofline
//! with per-level traffic from tiles and loop order ([`cpu`]), the npu model
//! ([`npu`], SCALE-Sim's folds and cycles) and the neuromorphic floorline
//! ([`neuro`]). The gpu model (roofline, swizzle/L2), the evaluator trait over a full
//! schedule, the search that fills `auto` knobs, and `archc tune`/`report`
//! are the rest of this crate's issue.

pub mod bounds;
pub mod cpu;
pub mod evaluate;
pub mod fusion;
pub mod gemm;
pub mod gpu;
pub mod kernel_shape;
pub mod neuro;
pub mod npu;
pub mod quantize;
pub mod report;
pub mod schedule;
pub mod search;
pub mod sparsity;
