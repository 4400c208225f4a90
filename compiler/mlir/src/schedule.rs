//! A tuned loop nest as a transform-dialect script: MLIR's own tiling,
//! fusion and vectorization applied to the linalg module, so the code that
//! runs has the tiles, loop order and vector dimension the cost model
//! predicted.
//!
//! For each workload op (its linalg parts, [`crate::linalg::Part`]):
//! - a reduction nested in element-wise work (`relu(sum[k] ... + b[j])`)
//!   is fused back: the element-wise generic is tiled over its dimensions at
//!   the outermost level that tiles one of them, and the reduction (with its
//!   fill) is fused into that tile loop, so bias and activation run on each
//!   tile while it is in cache;
//! - every reducing generic is tiled level by level (l3, l2, l1: the
//!   nest's `tiles[1..]`; a level that keeps its parent's size adds no
//!   loop), with the loops in the nest's order (`interchange`);
//! - with a vector dimension, the innermost tile is cut into register tiles
//!   of `mr` x `nr` (nr = two vector registers along the vector dimension)
//!   with the reduction innermost, and the function is vectorized:
//!   contractions become outer products held in registers across the
//!   reduction loop. Without one the code stays scalar, as the cost model
//!   assumes. Tiles with a remainder (sizes that do not divide) stay scalar
//!   there.

use crate::linalg::{Part, PartKind};
use arch_cost::cpu::LoopNest;
use arch_sema::model::WorkloadModel;
use std::fmt::Write;

/// What the script needs to know of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// Bytes of the widest vector register (32 for AVX2, 64 for AVX-512).
    pub vector_bytes: u64,
    /// Rows of a register tile.
    pub register_rows: u64,
    /// Cores: an op runs on as many as its nest's parallel tiles ask for
    /// (`LoopNest::threads`).
    pub threads: u64,
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            vector_bytes: 32,
            register_rows: arch_cost::kernel_shape::TRANSFORM_TILE_ROWS,
            threads: 1,
        }
    }
}

struct Script {
    text: String,
    next: usize,
}

impl Script {
    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("%{prefix}{}", self.next)
    }

    fn line(&mut self, s: String) {
        let _ = writeln!(self.text, "    {s}");
    }

    /// `tile_using_for` of `handle` with `sizes` (one per dim) in the loop
    /// order `interchange`; returns the tiled op and its loops (none when
    /// every size is 0, in which case nothing is emitted).
    fn tile(
        &mut self,
        handle: &str,
        sizes: &[u64],
        interchange: &[usize],
    ) -> (String, Vec<String>) {
        let loops = sizes.iter().filter(|s| **s > 0).count();
        if loops == 0 {
            return (handle.to_string(), Vec::new());
        }
        let tiled = self.fresh("t");
        let l = self.fresh("loops");
        let list = |xs: Vec<String>| xs.join(", ");
        let types = std::iter::repeat_n("!transform.any_op", loops + 1)
            .collect::<Vec<_>>()
            .join(", ");
        let binding = if loops == 1 {
            l.clone()
        } else {
            format!("{l}:{loops}")
        };
        self.line(format!(
            "{tiled}, {binding} = transform.structured.tile_using_for {handle} tile_sizes [{}] interchange = [{}] : (!transform.any_op) -> ({types})",
            list(sizes.iter().map(u64::to_string).collect()),
            list(interchange.iter().map(usize::to_string).collect()),
        ));
        let handles = if loops == 1 {
            vec![l]
        } else {
            (0..loops).map(|i| format!("{l}#{i}")).collect()
        };
        (tiled, handles)
    }

    /// `tile_using_forall` of `handle` with `sizes`: the chunks run in
    /// parallel. Returns the tiled op and the `scf.forall`.
    fn forall(&mut self, handle: &str, sizes: &[u64]) -> (String, String) {
        let tiled = self.fresh("t");
        let forall = self.fresh("forall");
        let list: Vec<String> = sizes.iter().map(u64::to_string).collect();
        self.line(format!(
            "{tiled}, {forall} = transform.structured.tile_using_forall {handle} tile_sizes [{}] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)",
            list.join(", ")
        ));
        (tiled, forall)
    }

    /// Splits the `scf.for` `l` into its whole steps and the last partial
    /// one (`transform.loop.peel`); returns the linalg ops in each (the
    /// loop must have a partial step, or peeling fails).
    fn peel(&mut self, l: &str) -> Vec<String> {
        let cast = self.fresh("for");
        let (main, rest) = (self.fresh("whole"), self.fresh("rest"));
        self.line(format!(
            "{cast} = transform.cast {l} : !transform.any_op to !transform.op<\"scf.for\">"
        ));
        self.line(format!(
            "{main}, {rest} = transform.loop.peel {cast} : (!transform.op<\"scf.for\">) -> (!transform.any_op, !transform.any_op)"
        ));
        [main, rest]
            .iter()
            .map(|body| {
                let op = self.fresh("in");
                self.line(format!(
                    "{op} = transform.structured.match ops{{[\"linalg.generic\"]}} in {body} : (!transform.any_op) -> !transform.any_op"
                ));
                op
            })
            .collect()
    }

    fn fuse(&mut self, producer: &str, into: &str) -> String {
        let fused = self.fresh("fused");
        let containing = self.fresh("into");
        self.line(format!(
            "{fused}, {containing} = transform.structured.fuse_into_containing_op {producer} into {into} : (!transform.any_op, !transform.any_op) -> (!transform.any_op, !transform.any_op)"
        ));
        fused
    }
}

/// The loop order of a generic with `dims` (op variables): the positions
/// of its dims in the nest's order.
fn interchange(dims: &[usize], order: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = order
        .iter()
        .filter_map(|v| dims.iter().position(|d| d == v))
        .collect();
    for d in 0..dims.len() {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// Tile sizes of `dims` going from level `l - 1` to level `l`: 0 where the
/// level keeps the parent's size (or the dim is not in `only`).
fn level_sizes(
    nest: &LoopNest,
    l: usize,
    dims: &[usize],
    only: &dyn Fn(usize) -> bool,
) -> Vec<u64> {
    dims.iter()
        .enumerate()
        .map(|(i, v)| {
            let (parent, tile) = (nest.tiles[l - 1][*v], nest.tiles[l][*v]);
            if only(i) && tile < parent {
                tile
            } else {
                0
            }
        })
        .collect()
}

/// Tiles `handle` (a generic with `dims`, `p` of them parallel, tiled by
/// levels 1..=`through` of `nest`) by its register tile `reg` in the loop
/// order `order`; returns the tiled ops.
/// A partial vector tile is masked, and LLVM keeps a masked accumulator in
/// memory, loading and storing it on every step of a reduction: where the
/// vector dimension's extent leaves one, the whole tiles run in a loop of
/// their own (unmasked, accumulators in registers) and the partial one
/// after it, so there are two tiled ops.
#[allow(clippy::too_many_arguments)]
fn register_tiles(
    s: &mut Script,
    handle: &str,
    reg: &[u64],
    order: &[usize],
    (nest, through): (&LoopNest, usize),
    dims: &[usize],
    p: usize,
    machine: &Machine,
) -> Vec<String> {
    let (tiled, loops) = s.tile(handle, reg, order);
    let vector_loop = nest.vector.and_then(|vd| {
        let pos = dims[..p].iter().position(|d| *d == vd)?;
        let extent = nest.tiled_extent(vd, p, machine.threads, through);
        let nth = order
            .iter()
            .filter(|i| reg[**i] > 0)
            .position(|i| *i == pos)?;
        // Only the innermost loop: peeling one with loops inside it makes
        // bufferization copy the accumulator.
        let innermost = nth + 1 == loops.len();
        loops
            .get(nth)
            .filter(|_| arch_cost::kernel_shape::peels_vector_loop(extent, reg[pos], innermost))
            .cloned()
    });
    match vector_loop {
        Some(l) => s.peel(&l),
        None => vec![tiled],
    }
}

/// The register tile of a generic: `nr` along the vector dimension, `mr`
/// along the innermost other parallel dimension in the order, 1 along other
/// parallel dimensions, the reductions left whole (tiled by 1 afterwards).
/// `None` when the vector dimension is not one of its parallel dims.
fn register_tile(
    nest: &LoopNest,
    dims: &[usize],
    parallel: usize,
    lanes: u64,
    machine: &Machine,
) -> Option<Vec<u64>> {
    let vd = nest.vector?;
    let vpos = dims[..parallel].iter().position(|d| *d == vd)?;
    let innermost = |v: usize| nest.tiles.last().map_or(1, |t| t[v]);
    let nr = arch_cost::kernel_shape::transform_tile_cols(lanes, innermost(vd));
    let mpos = nest
        .order
        .iter()
        .rev()
        .filter_map(|v| dims[..parallel].iter().position(|d| d == v))
        .find(|p| *p != vpos);
    let mut sizes = vec![0u64; dims.len()];
    for (i, s) in sizes.iter_mut().enumerate().take(parallel) {
        *s = 1;
        if i == vpos {
            *s = nr.max(1);
        } else if Some(i) == mpos {
            // Rows share what a reduction loads; element-wise work gains
            // nothing from them, and long bodies (a gelu's polynomial) on
            // many rows run out of registers.
            let rows = if parallel == dims.len() {
                1
            } else {
                machine.register_rows
            };
            *s = rows.min(innermost(dims[i])).max(1);
        }
    }
    Some(sizes)
}

/// The script for `w` lowered into `parts`, each op under its nest
/// (`nests[op]`; `None` leaves the op untiled). `elem_bytes[op]` is the
/// byte width of the op's element type.
pub fn transform_script(
    w: &WorkloadModel,
    parts: &[Part],
    nests: &[Option<LoopNest>],
    elem_bytes: &[u64],
    machine: &Machine,
) -> String {
    let mut s = Script {
        text: String::new(),
        next: 0,
    };
    let n = parts.len();
    s.line("%all = transform.structured.match ops{[\"linalg.fill\", \"linalg.generic\"]} in %root : (!transform.any_op) -> !transform.any_op".into());
    let handles: Vec<String> = (0..n).map(|i| format!("%p{i}")).collect();
    if n == 1 {
        s.line(format!(
            "{} = transform.merge_handles %all : !transform.any_op",
            handles[0]
        ));
    } else if n > 1 {
        s.line(format!(
            "{} = transform.split_handle %all : (!transform.any_op) -> ({})",
            handles.join(", "),
            vec!["!transform.any_op"; n].join(", ")
        ));
    }
    // Register tiles to vectorize: (handle, vector sizes).
    let mut vectorize: Vec<(String, Vec<u64>)> = Vec::new();
    for (op_index, op) in w.ops.iter().enumerate() {
        let Some(nest) = nests.get(op_index).and_then(|x| x.as_ref()) else {
            continue;
        };
        let mine: Vec<usize> = (0..n).filter(|i| parts[*i].op == op_index).collect();
        let Some(&root) = mine.last() else { continue };
        let lanes = machine.vector_bytes / elem_bytes.get(op_index).copied().unwrap_or(4).max(1);
        let p = op.output_rank;
        let levels = nest.tiles.len();
        // Reducing parts (with the fill before each) and the pointwise root.
        let mut reduces: Vec<(Option<usize>, usize)> = Vec::new();
        for (k, &i) in mine.iter().enumerate() {
            if parts[i].kind == PartKind::Reduce {
                let fill = k
                    .checked_sub(1)
                    .map(|j| mine[j])
                    .filter(|j| parts[*j].kind == PartKind::Fill);
                reduces.push((fill, i));
            }
        }
        // (fill, reduce, part, the level its output dims were tiled by a
        // fusion loop).
        let mut reduce_handles: Vec<(Option<String>, String, usize, Option<usize>)> = reduces
            .iter()
            .map(|(f, r)| (f.map(|f| handles[f].clone()), handles[*r].clone(), *r, None))
            .collect();
        // Threads: the first parallel output dimension split into one chunk
        // per thread (`scf.forall`, OpenMP once lowered), every part of the
        // op fused into it; the levels then tile each chunk.
        let mut root_handle = handles[root].clone();
        // As many threads as the nest's parallel tiles ask for (the cpu
        // model counts the same).
        let threads = nest.threads(machine.threads);
        if let Some(v) = nest.thread_split(p, machine.threads) {
            let dims = &parts[root].dims;
            let sizes: Vec<u64> = dims
                .iter()
                .map(|d| {
                    if *d == v {
                        op.vars[v].extent.div_ceil(threads).max(1)
                    } else {
                        0
                    }
                })
                .collect();
            let (tiled, forall) = s.forall(&root_handle, &sizes);
            root_handle = tiled;
            for (fill, reduce, part, _) in reduce_handles.iter_mut().rev() {
                if *part == root {
                    *reduce = root_handle.clone();
                } else {
                    *reduce = s.fuse(reduce, &forall);
                }
                if let Some(f) = fill {
                    *f = s.fuse(f, &forall);
                }
            }
        }
        if parts[root].kind == PartKind::Pointwise {
            let dims = &parts[root].dims;
            let order = interchange(dims, &nest.order);
            // Fuse at the outermost level that tiles an output dimension.
            let fuse_level = (1..levels).find(|l| {
                level_sizes(nest, *l, dims, &|_| true)
                    .iter()
                    .any(|x| *x > 0)
            });
            if let Some(l) = fuse_level {
                let sizes = level_sizes(nest, l, dims, &|_| true);
                let (tiled, loops) = s.tile(&root_handle, &sizes, &order);
                root_handle = tiled;
                if let Some(inner) = loops.last() {
                    for (fill, reduce, _, fused_at) in reduce_handles.iter_mut().rev() {
                        *reduce = s.fuse(reduce, inner);
                        if let Some(f) = fill {
                            *f = s.fuse(f, inner);
                        }
                        *fused_at = Some(l);
                    }
                }
            }
            let reg =
                register_tile(nest, dims, p, lanes, machine).filter(|_| parts[root].plain_indexing);
            if let Some(reg) = reg {
                for body in register_tiles(
                    &mut s,
                    &root_handle,
                    &reg,
                    &order,
                    (nest, fuse_level.unwrap_or(0)),
                    dims,
                    p,
                    machine,
                ) {
                    vectorize.push((body, reg.clone()));
                }
            }
        }
        for (fill, reduce, part, fused_at) in reduce_handles {
            let dims = &parts[part].dims;
            let order = interchange(dims, &nest.order);
            let mut handle = reduce;
            for l in 1..levels {
                // Levels a fusion loop already tiled: only the reductions.
                let sizes = match fused_at {
                    Some(f) if l <= f => level_sizes(nest, l, dims, &|d| d >= p),
                    _ => level_sizes(nest, l, dims, &|_| true),
                };
                handle = s.tile(&handle, &sizes, &order).0;
            }
            // Masked vectorization needs plain indexing; convolutions'
            // sliding windows stay scalar code.
            let reg =
                register_tile(nest, dims, p, lanes, machine).filter(|_| parts[part].plain_indexing);
            if let Some(reg) = reg {
                let k: Vec<u64> = (0..dims.len()).map(|d| u64::from(d >= p)).collect();
                let sizes: Vec<u64> = reg.iter().zip(&k).map(|(r, k)| *r.max(k)).collect();
                let bodies = register_tiles(
                    &mut s,
                    &handle,
                    &reg,
                    &order,
                    (nest, levels - 1),
                    dims,
                    p,
                    machine,
                );
                for body in bodies {
                    let (inner, _) = s.tile(&body, &k, &order);
                    vectorize.push((inner, sizes.clone()));
                }
                if let Some(f) = fill {
                    let fill_sizes: Vec<u64> = reg[..p].to_vec();
                    let fill_order: Vec<usize> = (0..p).collect();
                    let (tiled_fill, _) = s.tile(&f, &fill_sizes, &fill_order);
                    vectorize.push((tiled_fill, fill_sizes));
                }
            }
        }
    }
    if !vectorize.is_empty() {
        // Only the register tiles: masked where a remainder makes a tile
        // smaller than the vector sizes.
        for (handle, sizes) in &vectorize {
            let sizes: Vec<String> = sizes.iter().map(u64::to_string).collect();
            s.line(format!(
                "transform.structured.vectorize {handle} vector_sizes [{}] : !transform.any_op",
                sizes.join(", ")
            ));
        }
        s.line("%func = transform.structured.match ops{[\"func.func\"]} in %root : (!transform.any_op) -> !transform.any_op".into());
        s.line("transform.apply_patterns to %func {".into());
        s.line("  transform.apply_patterns.vector.lower_contraction lowering_strategy = \"outerproduct\"".into());
        s.line("  transform.apply_patterns.vector.lower_outerproduct".into());
        s.line("  transform.apply_patterns.vector.lower_masked_transfers".into());
        s.line("  transform.apply_patterns.vector.lower_masks".into());
        s.line("  transform.apply_patterns.canonicalization".into());
        s.line("} : !transform.any_op".into());
    }
    let mut out = String::new();
    out.push_str("  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {\n");
    out.push_str(&s.text);
    out.push_str("    transform.yield\n  }\n");
    out
}

/// `module` (the text of [`crate::linalg::lower`]) with `script` attached
/// as its transform script.
pub fn attach(module: &str, script: &str) -> String {
    let body = module.trim_end();
    let body = body.strip_suffix('}').unwrap_or(body);
    let body = body.replacen(
        "module {",
        "module attributes {transform.with_named_sequence} {",
        1,
    );
    format!("{body}{script}}}\n")
}
