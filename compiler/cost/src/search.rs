//! The search that fills every open knob. Each op is tuned on its own (ops
//! run one after another, so the total is the sum). Small spaces are
//! enumerated; large ones get a seeded random sample (two fifths of the
//! evaluations), an evolutionary stage over the best points (a fifth:
//! uniform crossover of two parents plus one mutated knob), then hill
//! climbing from the best few (a fifth). Candidates whose tiles do not fit their
//! level are pruned before evaluation. Evaluation runs in parallel (rayon),
//! and the best point is chosen by (latency, energy, position), so the result
//! depends only on the seed and the evaluation limit, never on threads.

use crate::cpu::{CpuParams, LoopNest};
use crate::evaluate::{evaluate, CostReport};
use crate::npu::NpuParams;
use crate::schedule::{
    initial_schedule_with, op_footprint, tile_choices, Schedule, TileDoesNotFit,
};
use arch_sema::hardware::{HardwareModel, HwClass};
use arch_sema::mapping::{Domain, KnobTarget, KnobValue, MappingModel};
use arch_sema::model::{Op, WorkloadModel};
use rayon::prelude::*;
use std::time::{Duration, Instant};

/// Called with `(op, evaluations so far for it)` as the search goes.
pub type Progress = std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>;

#[derive(Clone)]
pub struct SearchOptions {
    pub seed: u64,
    /// Wall-clock limit; when it cuts the search short the outcome says so.
    pub budget: Duration,
    /// Evaluations per op at most (the deterministic limit).
    pub max_evaluations: usize,
    pub progress: Option<Progress>,
    /// Real weights: budgeted precision choices use the errors measured on
    /// them instead of the estimate.
    pub weights: Option<std::sync::Arc<crate::quantize::Weights>>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            seed: 1,
            budget: Duration::from_secs(10),
            max_evaluations: 20_000,
            progress: None,
            weights: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchOutcome {
    pub schedule: Schedule,
    pub report: CostReport,
    /// Points in the space of every open knob (product over ops).
    pub space_size: f64,
    pub evaluated: usize,
    pub pruned: usize,
    /// Predicted latency over the speed-of-light bound (1.0 is perfect).
    pub gap_to_lower_bound: f64,
    pub stopped_by_budget: bool,
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The open choices of one op's loop nest: a value index per knob.
struct NestSpace {
    /// `tile_choices[l - 1][v]` for levels below the outermost.
    tiles: Vec<Vec<Vec<u64>>>,
    orders: Vec<Vec<usize>>,
    parallels: Vec<Vec<usize>>,
    vectors: Vec<Option<usize>>,
}

impl NestSpace {
    fn dims(&self) -> Vec<usize> {
        let mut d: Vec<usize> = self
            .tiles
            .iter()
            .flat_map(|l| l.iter().map(Vec::len))
            .collect();
        d.push(self.orders.len());
        d.push(self.parallels.len());
        d.push(self.vectors.len());
        d
    }

    fn size(&self) -> f64 {
        self.dims().iter().map(|x| *x as f64).product()
    }

    fn nest(&self, op: &Op, point: &[usize]) -> LoopNest {
        let mut tiles = vec![op.vars.iter().map(|v| v.extent).collect::<Vec<u64>>()];
        let mut k = 0;
        for level in &self.tiles {
            let parent = tiles.last().cloned().unwrap_or_default();
            let tile: Vec<u64> = level
                .iter()
                .enumerate()
                .map(|(v, choices)| {
                    let t = choices[point[k + v]];
                    t.min(parent[v])
                })
                .collect();
            k += level.len();
            tiles.push(tile);
        }
        LoopNest {
            tiles,
            order: self.orders[point[k]].clone(),
            parallel: self.parallels[point[k + 1]].clone(),
            vector: self.vectors[point[k + 2]],
        }
    }
}

/// The evolutionary stage keeps this many points, and hill climbing starts
/// from the best CLIMB_STARTS of them.
const POPULATION: usize = 32;
const CLIMB_STARTS: usize = 8;
/// Children per generation (evaluated in parallel).
const CHILDREN: usize = 256;

/// How much slower than the fastest N:M choice a denser one may be and
/// still be kept (2 %).
const SPARSITY_SLACK: f64 = 0.02;

/// How a loop nest ranks: predicted latency (in steps of about 1 %), then
/// compute cycles, then energy (lower is better, compared in that order).
type Score = (f64, f64, f64, f64);

/// Gpu block tiles narrower than this along M or N (where the op is that
/// wide) are not tried: they waste a tensor-core fragment, and multiply the
/// blocks the swizzle model replays.
const GPU_MIN_BLOCK: u64 = 16;

/// Loop orders are searched for ops of at most this many variables (7! =
/// 5040 orders: a convolution with a batch); larger ops keep their first
/// order.
const MAX_PERMUTED_VARS: usize = 7;

/// The model that scores one op's loop nests on a cpu, an npu or a gpu
/// (under the schedule's launch order), with everything that does not
/// depend on the nest worked out once.
enum NestModel {
    Cpu(CpuParams),
    Npu(NpuParams, crate::gemm::GemmView),
    Gpu(crate::gpu::GpuOp, crate::gpu::Swizzle),
}

impl NestModel {
    fn new(
        w: &WorkloadModel,
        hw: &HardwareModel,
        op: &Op,
        swizzle: Option<crate::gpu::Swizzle>,
    ) -> Result<NestModel, TuneError> {
        match hw.class {
            HwClass::Npu => NpuParams::from_hardware(hw)
                .map(|p| NestModel::Npu(p, crate::gemm::gemm_view(w, op)))
                .ok_or(TuneError::Model("the npu hardware has no array".into())),
            HwClass::Gpu => crate::gpu::GpuOp::new(w, hw, op)
                .map(|g| NestModel::Gpu(g, swizzle.unwrap_or(crate::gpu::Swizzle::RowMajor)))
                .ok_or(TuneError::Model(
                    "the gpu hardware lacks a compute rate, levels or a clock".into(),
                )),
            _ => CpuParams::for_op(hw, w, op)
                .map(NestModel::Cpu)
                .ok_or(TuneError::Model("no compute rate".into())),
        }
    }

    /// Whether the nest is worth scoring: gpu blocks narrower than
    /// GPU_MIN_BLOCK along M or N (where the op is that wide) are not.
    fn admits(&self, nest: &LoopNest) -> bool {
        match self {
            NestModel::Gpu(gop, _) => {
                let t = crate::gpu::block_tile(&gop.g, nest);
                t.bm >= gop.g.m.min(GPU_MIN_BLOCK)
                    && t.bn >= gop.g.n.min(GPU_MIN_BLOCK)
                    && gop.block_threads(t) <= crate::bounds::GPU_MAX_BLOCK_THREADS
            }
            _ => true,
        }
    }

    fn predict(&self, w: &WorkloadModel, op: &Op, nest: &LoopNest) -> crate::report::Predicted {
        match self {
            NestModel::Cpu(p) => crate::cpu::evaluate(w, op, p, nest),
            NestModel::Npu(p, g) => crate::npu::evaluate_view(w, op, g, p, nest),
            NestModel::Gpu(gop, swizzle) => gop.predict(nest, *swizzle).1,
        }
    }
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first);
            out.push(p);
        }
    }
    out
}

fn nest_space(
    w: &WorkloadModel,
    hw: &HardwareModel,
    m: &MappingModel,
    op: &Op,
    start: &LoopNest,
) -> NestSpace {
    let tensor = &w.tensors[op.output].name;
    let knob = |t: KnobTarget| m.knobs.iter().find(|k| k.target == t).map(|k| &k.domain);
    let last = hw.levels.len().saturating_sub(1);
    let tiles = hw
        .levels
        .iter()
        .enumerate()
        .skip(1)
        .map(|(l, level)| {
            op.vars
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    // The gpu model reads only the block (innermost) tile,
                    // and blocks narrower than a tensor-core fragment (16)
                    // only waste it.
                    if hw.class == HwClass::Gpu && l < last {
                        return vec![start.tiles[l][i]];
                    }
                    let d = knob(KnobTarget::Tile {
                        tensor: tensor.clone(),
                        level: level.name.clone(),
                        dim: v.name.clone(),
                    });
                    tile_choices(d, v.extent)
                })
                .collect()
        })
        .collect();
    let tiles = above_inner_tiles(tiles);
    let orders = match knob(KnobTarget::Order {
        tensor: tensor.clone(),
    }) {
        Some(Domain::Fixed(_)) => vec![start.order.clone()],
        _ if hw.class == HwClass::Gpu => vec![start.order.clone()],
        _ if op.vars.len() <= MAX_PERMUTED_VARS => {
            permutations(&(0..op.vars.len()).collect::<Vec<_>>())
        }
        _ => vec![start.order.clone()],
    };
    let parallels = match knob(KnobTarget::Parallel {
        tensor: tensor.clone(),
    }) {
        Some(Domain::Fixed(KnobValue::Names(_))) => vec![start.parallel.clone()],
        // One array: nothing to split over; a gpu splits by blocks.
        _ if matches!(hw.class, HwClass::Npu | HwClass::Gpu) => vec![start.parallel.clone()],
        // Serial is not among the choices when there is an output
        // dimension: a mapping cannot pin "none", and splitting a dimension
        // whose innermost tile is the whole extent is serial anyway.
        _ if op.output_rank == 0 => vec![Vec::new()],
        _ => (0..op.output_rank).map(|v| vec![v]).collect(),
    };
    // On a cpu the vector lanes go to an output dimension (the model
    // charges lanes a short innermost tile leaves empty) or to a reduced
    // one that a kernel takes (a row reduction's); other classes keep
    // theirs. The transform path's vectors along a reduced dimension are
    // not tried: the code MLIR makes for them reduces every vector across
    // its lanes (a 2 x 512 x 512 product with `b[j, k]` ran 16x slower
    // than the model's strided-vector rate). A mapping may still ask.
    let vectors = match knob(KnobTarget::Vectorize {
        tensor: tensor.clone(),
    }) {
        Some(Domain::Fixed(_)) => vec![start.vector],
        _ if hw.class == HwClass::Cpu => {
            let useful: Vec<Option<usize>> = (0..op.vars.len())
                .filter(|&v| v < op.output_rank || crate::cpu::takes_kernel(w, op, v))
                .map(Some)
                .collect();
            if useful.is_empty() {
                (0..op.vars.len()).map(Some).collect()
            } else {
                useful
            }
        }
        _ => vec![start.vector],
    };
    NestSpace {
        tiles,
        orders,
        parallels,
        vectors,
    }
}

/// Tile choices per level (outermost first) with every choice below the
/// least an inner level can take removed: an outer tile clamps the tiles
/// inside it, so a small outer tile would break a pinned inner one. A
/// level left with nothing keeps its largest choice.
fn above_inner_tiles(mut tiles: Vec<Vec<Vec<u64>>>) -> Vec<Vec<Vec<u64>>> {
    for l in (0..tiles.len()).rev() {
        for v in 0..tiles[l].len() {
            let floor = tiles[l + 1..]
                .iter()
                .filter_map(|inner| inner.get(v).and_then(|c| c.iter().min()))
                .max()
                .copied()
                .unwrap_or(1);
            let largest = tiles[l][v].iter().max().copied();
            tiles[l][v].retain(|t| *t >= floor);
            if tiles[l][v].is_empty() {
                tiles[l][v].extend(largest);
            }
        }
    }
    tiles
}

fn fits(w: &WorkloadModel, hw: &HardwareModel, op: &Op, nest: &LoopNest) -> bool {
    hw.levels.iter().enumerate().skip(1).all(|(l, level)| {
        level
            .capacity_for_tile()
            .is_none_or(|cap| op_footprint(w, op, &nest.tiles[l]) <= cap)
    })
}

/// Fills every open knob of `m`.
pub fn tune(
    w: &WorkloadModel,
    hw: &HardwareModel,
    m: &MappingModel,
    opts: &SearchOptions,
) -> Result<SearchOutcome, TuneError> {
    let started = Instant::now();
    let mut schedule =
        initial_schedule_with(w, hw, m, opts.weights.as_deref()).map_err(TuneError::DoesNotFit)?;
    let mut space_size = 1.0;
    let mut evaluated = 0usize;
    let mut pruned = 0usize;
    let mut stopped_by_budget = false;
    // N:M patterns first (they change the bytes every tiling moves): each
    // weight whose mapping says `sparsity w: auto` gets a pattern. Pruning
    // harder than needed costs accuracy, so among the patterns whose
    // latency under the first schedule is within SPARSITY_SLACK of the
    // fastest, the densest is kept (dense before 2:4 before 1:4).
    for k in &m.knobs {
        let (KnobTarget::Sparsity { tensor }, Domain::Set(choices), Some(_)) =
            (&k.target, &k.domain, k.span)
        else {
            continue;
        };
        let Some(t) = w.tensor(tensor) else { continue };
        space_size *= choices.len().max(1) as f64;
        let mut scored: Vec<(f64, Option<(u32, u32)>)> = Vec::new();
        for choice in choices {
            let Some(pattern) = crate::schedule::sparsity_of(&Domain::Fixed(choice.clone())) else {
                continue;
            };
            let mut trial = schedule.clone();
            trial.sparsity.retain(|(x, _)| *x != t);
            trial.sparsity.push((t, pattern));
            let r = evaluate(w, hw, &trial)?;
            evaluated += 1;
            scored.push((r.total.latency_s, pattern));
        }
        let fastest = scored.iter().map(|(l, _)| *l).fold(f64::INFINITY, f64::min);
        let kept = |p: &Option<(u32, u32)>| p.map_or(1.0, |(n, m)| n as f64 / m as f64);
        let best = scored
            .iter()
            .filter(|(l, _)| *l <= fastest * (1.0 + SPARSITY_SLACK))
            .max_by(|a, b| kept(&a.1).total_cmp(&kept(&b.1)))
            .map(|(_, p)| *p);
        if let Some(pattern) = best {
            schedule.sparsity.retain(|(x, _)| *x != t);
            schedule.sparsity.push((t, pattern));
        }
    }
    if matches!(hw.class, HwClass::Cpu | HwClass::Npu | HwClass::Gpu) {
        // Tensors stored in a chosen precision and pattern move so; capacity
        // is checked at the declared types, as `archc check` does.
        let stored = crate::schedule::stored(w, &schedule);
        for s in schedule.ops.iter_mut() {
            let op = &w.ops[s.op];
            let model = NestModel::new(&stored, hw, op, schedule.swizzle)?;
            let space = nest_space(w, hw, m, op, &s.nest);
            space_size *= space.size();
            // Latency first; among nests equally fast in the model (memory
            // bound, say), one whose tiles divide their parents (no
            // remainder loops or masks; row chains need whole rows), then
            // the one with less compute (better vector code), then the one
            // that spends less energy.
            // Latencies within about 1 % of each other count as equal (the
            // model is not finer than that, and a memory-bound prediction
            // hides how fast the code computes).
            let score = |nest: &LoopNest| {
                let p = model.predict(&stored, op, nest);
                let bucket = (p.latency_s.max(1e-15).ln() * 100.0).round();
                let ragged = f64::from(u8::from(!nest.divides_evenly()));
                (bucket, ragged, p.compute_cycles, p.energy_j)
            };
            let mut best = (score(&s.nest), s.nest.clone());
            evaluated += 1;
            let dims = space.dims();
            let mut rng = Rng::new(opts.seed ^ (s.op as u64).wrapping_mul(0x51_7CC1));
            let candidates: Vec<Vec<usize>> = if space.size() <= opts.max_evaluations as f64 {
                // Every point, in a fixed order.
                let mut all = vec![vec![]];
                for d in &dims {
                    all = all
                        .into_iter()
                        .flat_map(|p: Vec<usize>| {
                            (0..*d).map(move |i| [p.clone(), vec![i]].concat())
                        })
                        .collect();
                }
                all
            } else {
                (0..opts.max_evaluations * 2 / 5)
                    .map(|_| dims.iter().map(|d| rng.below(*d)).collect())
                    .collect()
            };
            // Scores a batch of points in parallel; `None` where the tiles
            // do not fit (pruned before evaluation).
            let score_all = |batch: &[Vec<usize>], evaluated: &mut usize, pruned: &mut usize| {
                let nests: Vec<LoopNest> = batch.iter().map(|p| space.nest(op, p)).collect();
                let scored: Vec<Option<(Score, LoopNest)>> = nests
                    .into_par_iter()
                    .map(|n| (fits(w, hw, op, &n) && model.admits(&n)).then(|| (score(&n), n)))
                    .collect();
                let feasible = scored.iter().filter(|x| x.is_some()).count();
                *evaluated += feasible;
                *pruned += batch.len() - feasible;
                scored
            };
            let by_score =
                |a: &Score, b: &Score| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal);
            // The population: the best distinct points seen, best first.
            let mut population: Vec<(Score, Vec<usize>, LoopNest)> = Vec::new();
            let admit = |population: &mut Vec<(Score, Vec<usize>, LoopNest)>,
                         batch: &[Vec<usize>],
                         scored: Vec<Option<(Score, LoopNest)>>| {
                for (point, found) in batch.iter().zip(scored) {
                    let Some((sc, nest)) = found else { continue };
                    // Kept sorted, best first: most points lose to the worst
                    // member and cost one comparison.
                    let full = population.len() >= POPULATION;
                    if full
                        && population
                            .last()
                            .is_some_and(|w| !by_score(&sc, &w.0).is_lt())
                    {
                        continue;
                    }
                    if population.iter().any(|(_, _, n)| *n == nest) {
                        continue;
                    }
                    let at = population.partition_point(|(x, _, _)| !by_score(&sc, x).is_lt());
                    population.insert(at, (sc, point.clone(), nest));
                    population.truncate(POPULATION);
                }
            };
            for chunk in candidates.chunks(1024) {
                if started.elapsed() > opts.budget {
                    stopped_by_budget = true;
                    break;
                }
                let scored = score_all(chunk, &mut evaluated, &mut pruned);
                admit(&mut population, chunk, scored);
                if let Some(report) = &opts.progress {
                    report(s.op, evaluated);
                }
            }
            let large = space.size() > opts.max_evaluations as f64;
            // Evolution: children of two parents (each knob from either, at
            // random), one knob of each then moved to a random value; the
            // best of parents and children survive.
            if large && population.len() >= 2 {
                let generations = opts.max_evaluations / 5 / CHILDREN;
                for _ in 0..generations {
                    if started.elapsed() > opts.budget {
                        stopped_by_budget = true;
                        break;
                    }
                    let children: Vec<Vec<usize>> = (0..CHILDREN)
                        .map(|_| {
                            let a = &population[rng.below(population.len())].1;
                            let b = &population[rng.below(population.len())].1;
                            let mut child: Vec<usize> = a
                                .iter()
                                .zip(b)
                                .map(|(x, y)| if rng.below(2) == 0 { *x } else { *y })
                                .collect();
                            let k = rng.below(dims.len());
                            child[k] = rng.below(dims[k]);
                            child
                        })
                        .collect();
                    let scored = score_all(&children, &mut evaluated, &mut pruned);
                    admit(&mut population, &children, scored);
                    if let Some(report) = &opts.progress {
                        report(s.op, evaluated);
                    }
                }
            }
            if let Some((sc, _, nest)) = population.first() {
                if by_score(sc, &best.0).is_lt() {
                    best = (*sc, nest.clone());
                }
            }
            // Hill climbing from the best few: move one knob to a
            // neighbouring value while that improves.
            if large && !stopped_by_budget {
                let starts: Vec<(Score, LoopNest)> = population
                    .iter()
                    .take(CLIMB_STARTS)
                    .map(|(sc, _, n)| (*sc, n.clone()))
                    .collect();
                let steps = opts.max_evaluations / 5 / (2 * dims.len() * starts.len()).max(1);
                for start in starts {
                    let mut current = start;
                    for _ in 0..steps.max(1) {
                        if started.elapsed() > opts.budget {
                            stopped_by_budget = true;
                            break;
                        }
                        let point = nearest_point(&space, &current.1);
                        let mut neighbours = Vec::new();
                        for (k, d) in dims.iter().enumerate() {
                            for delta in [-1i64, 1] {
                                let v = point[k] as i64 + delta;
                                if v >= 0 && (v as usize) < *d {
                                    let mut n = point.clone();
                                    n[k] = v as usize;
                                    neighbours.push(n);
                                }
                            }
                        }
                        let next = score_all(&neighbours, &mut evaluated, &mut pruned)
                            .into_iter()
                            .flatten()
                            .min_by(|a, b| by_score(&a.0, &b.0));
                        match next {
                            Some(n) if by_score(&n.0, &current.0).is_lt() => current = n,
                            _ => break,
                        }
                    }
                    if by_score(&current.0, &best.0).is_lt() {
                        best = current;
                    }
                }
            }
            s.nest = best.1;
        }
    }
    if hw.class == HwClass::Gpu {
        // The launch order: every choice of the knob's domain.
        let choices: Vec<crate::gpu::Swizzle> = match m
            .knobs
            .iter()
            .find(|k| k.target == KnobTarget::Swizzle)
            .map(|k| &k.domain)
        {
            Some(Domain::Set(values)) => values
                .iter()
                .filter_map(crate::schedule::swizzle_of)
                .collect(),
            _ => Vec::new(),
        };
        space_size *= choices.len().max(1) as f64;
        let mut best: Option<(f64, crate::gpu::Swizzle)> = None;
        for c in choices {
            let mut trial = schedule.clone();
            trial.swizzle = Some(c);
            let latency = evaluate(w, hw, &trial)?.total.latency_s;
            evaluated += 1;
            if best.is_none_or(|(b, _)| latency < b) {
                best = Some((latency, c));
            }
        }
        if let Some((_, c)) = best {
            schedule.swizzle = Some(c);
        }
    }
    if hw.class == HwClass::Neuromorphic {
        let (evals, points) = partition_spiking_layers(w, hw, &mut schedule)?;
        evaluated += evals;
        space_size *= points;
    }
    let report = evaluate(w, hw, &schedule)?;
    let bound: f64 = report.ops.iter().map(|o| o.predicted.lower_bound_s).sum();
    Ok(SearchOutcome {
        gap_to_lower_bound: if bound > 0.0 {
            report.total.latency_s / bound
        } else {
            1.0
        },
        schedule,
        report,
        space_size,
        evaluated,
        pruned,
        stopped_by_budget,
    })
}

/// Splits the spiking layers whose `partition` is open over cores: each
/// starts at the fewest cores that hold it, then the chip's spare cores go
/// one at a time to the layer whose split saves the most time (the
/// floorline's busiest core shrinks until messages dominate), while that
/// saves at least 0.5 % of its time. Every layer keeps its own cores. Returns `(evaluations,
/// points in the space)`.
fn partition_spiking_layers(
    w: &WorkloadModel,
    hw: &HardwareModel,
    schedule: &mut Schedule,
) -> Result<(usize, f64), TuneError> {
    let Some(params) = crate::neuro::NeuroParams::from_hardware(hw) else {
        return Ok((0, 1.0));
    };
    let open: Vec<usize> = schedule
        .ops
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.partition.is_none()
                && matches!(w.ops[s.op].kind, arch_sema::model::OpKind::Neuron { .. })
        })
        .map(|(i, _)| i)
        .collect();
    if open.is_empty() {
        return Ok((0, 1.0));
    }
    let layer_latency = |schedule: &Schedule, i: usize| -> Result<f64, TuneError> {
        let report = evaluate(w, hw, schedule)?;
        let name = &w.tensors[w.ops[schedule.ops[i].op].output].name;
        Ok(report
            .ops
            .iter()
            .find(|o| &o.name == name)
            .map_or(f64::INFINITY, |o| o.predicted.latency_s))
    };
    // The fewest cores each open layer fits on.
    for &i in &open {
        let layer = crate::evaluate::spiking_layer(w, schedule.ops[i].op, schedule);
        // None fits: leave it open; evaluation explains why.
        let Some(f) = crate::neuro::fewest_cores(&layer, &params) else {
            return Ok((0, 1.0));
        };
        schedule.ops[i].partition = Some(f);
    }
    let used = |schedule: &Schedule| -> u64 {
        schedule
            .ops
            .iter()
            .filter(|s| matches!(w.ops[s.op].kind, arch_sema::model::OpKind::Neuron { .. }))
            .map(|s| s.partition.unwrap_or(1))
            .sum()
    };
    let mut evaluated = 0;
    let mut current: Vec<f64> = Vec::new();
    for &i in &open {
        current.push(layer_latency(schedule, i)?);
        evaluated += 1;
    }
    while used(schedule) < params.cores {
        let mut best: Option<(f64, usize, f64)> = None;
        for (k, &i) in open.iter().enumerate() {
            let mut trial = schedule.clone();
            let Some(c) = trial.ops[i].partition else {
                continue;
            };
            trial.ops[i].partition = Some(c + 1);
            let layer = crate::evaluate::spiking_layer(w, trial.ops[i].op, &trial);
            if crate::neuro::check_capacity(&layer, &params, c + 1).is_some() {
                continue;
            }
            let t = layer_latency(&trial, i)?;
            evaluated += 1;
            let saving = current[k] - t;
            // A core that saves less than 0.5 % of the layer's time is not
            // worth taking from the chip.
            if saving > current[k] * 0.005 && best.is_none_or(|(s, _, _)| saving > s) {
                best = Some((saving, k, t));
            }
        }
        let Some((_, k, t)) = best else { break };
        let i = open[k];
        schedule.ops[i].partition = schedule.ops[i].partition.map(|c| c + 1);
        current[k] = t;
    }
    Ok((evaluated, (params.cores as f64).powi(open.len() as i32)))
}

/// The point of `space` closest to a loop nest (for hill climbing).
fn nearest_point(space: &NestSpace, nest: &LoopNest) -> Vec<usize> {
    let mut point = Vec::new();
    for (l, level) in space.tiles.iter().enumerate() {
        for (v, choices) in level.iter().enumerate() {
            let want = nest.tiles[l + 1][v];
            let i = choices
                .iter()
                .position(|c| *c >= want)
                .unwrap_or(choices.len() - 1);
            point.push(i);
        }
    }
    point.push(
        space
            .orders
            .iter()
            .position(|o| *o == nest.order)
            .unwrap_or(0),
    );
    point.push(
        space
            .parallels
            .iter()
            .position(|p| *p == nest.parallel)
            .unwrap_or(0),
    );
    point.push(
        space
            .vectors
            .iter()
            .position(|v| *v == nest.vector)
            .unwrap_or(0),
    );
    point
}

#[derive(Debug, Clone, PartialEq)]
pub enum TuneError {
    /// No value of the open knobs fits a tile in its level.
    DoesNotFit(TileDoesNotFit),
    /// The hardware's class has no model yet, or lacks what the model needs.
    Model(String),
    /// A fixed knob admits no schedule (a spiking layer over too few cores).
    Infeasible(crate::evaluate::Infeasible),
}
