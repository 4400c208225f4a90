//! The syntax tree. Spans are byte offsets relative to the start of the
//! declaration they belong to, so editing one declaration leaves the trees of
//! the others equal (the salsa front end relies on that).

/// A byte range `[start, end)` relative to the declaration's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: clamp_u32(start),
            end: clamp_u32(end),
        }
    }

    pub fn shift(self, by: u32) -> Span {
        Span {
            start: self.start.saturating_add(by),
            end: self.end.saturating_add(by),
        }
    }

    pub fn cover(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

fn clamp_u32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// A name as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name {
    pub text: String,
    pub span: Span,
}

/// A number as written; its value is read by the checker, which reports
/// literals that do not fit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number {
    pub text: String,
    pub is_float: bool,
    pub span: Span,
}

/// One top-level declaration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    Import(Import),
    Workload(Workload),
    Hardware(Hardware),
    Mapping(Mapping),
    Op(OpDecl),
    Neuron(NeuronDecl),
    /// Text that does not start with a declaration keyword.
    Error(Span),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Import {
    /// The module: `std.hw` in `import std.hw.host`.
    pub module: Vec<Name>,
    pub names: ImportNames,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImportNames {
    /// `import std.hw.{host, h100}` or `import std.nn.relu`.
    Names(Vec<Name>),
    /// `import std.nn.*`.
    Glob(Span),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Workload {
    pub name: Name,
    pub params: Vec<Param>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// A size parameter `B = 256`, or an op parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Param {
    pub name: Name,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Input,
    Weight,
    Output,
    Intermediate,
}

impl Role {
    pub fn keyword(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Weight => "weight",
            Role::Output => "output",
            Role::Intermediate => "intermediate",
        }
    }
}

/// A statement in a workload or tensor op body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Stmt {
    /// `input x : f32[B, K] @sparse(2:4 along K)`, or `h : f32[T, N]`.
    Tensor(TensorDecl),
    /// `y[i, j] = ...` (index form) or `h = lif(...)` (tensor form).
    Assign(Assign),
    Error(Span),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorDecl {
    pub role: Role,
    pub name: Name,
    pub ty: TypeExpr,
    pub annotations: Vec<Annotation>,
    pub span: Span,
}

/// `f32[B, K]`; a scalar has no dims.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TypeExpr {
    pub dtype: Name,
    pub dims: Vec<Expr>,
    pub span: Span,
}

/// `@sparse(2:4 along K)`, `@density(0.25)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Annotation {
    pub name: Name,
    pub args: Vec<AnnotationArg>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnnotationArg {
    pub value: Expr,
    /// `4` in `2:4`.
    pub ratio_of: Option<Expr>,
    /// `K` in `along K`.
    pub along: Option<Name>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Assign {
    pub target: Name,
    /// `Some` for the index form `y[i, j] = ...`.
    pub indices: Option<Vec<Expr>>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    /// `@`: matrix product over the last axis of the left and the first of the right.
    MatMul,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
}

impl ReduceOp {
    pub fn keyword(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExprKind {
    /// `2`, `1.5`, `2 ms`, `20 GB/s`.
    Number {
        value: Number,
        unit: Option<Name>,
    },
    Name(Name),
    /// `x[i, k]`.
    Access {
        tensor: Name,
        indices: Vec<Expr>,
    },
    /// `relu(x)`, `lif(h, tau: 2 ms)`.
    Call {
        callee: Name,
        args: Vec<Arg>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Neg(Box<Expr>),
    /// `sum[k] body`.
    Reduce {
        op: ReduceOp,
        indices: Vec<Name>,
        body: Box<Expr>,
    },
    /// `( expr )`, kept so the formatter and spans stay faithful.
    Paren(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arg {
    pub name: Option<Name>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hardware {
    pub name: Name,
    /// `cpu` in `hardware host : cpu`.
    pub class: Option<Name>,
    /// `h100` in `hardware h100_pcie extends h100`.
    pub base: Option<Name>,
    pub body: Vec<HwItem>,
    pub span: Span,
}

/// `clock 2 GHz`, or a block `level l2 { size 2 MiB per core }`,
/// `array systolic [16, 16] { dataflow weight_stationary }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HwItem {
    Field(HwEntry),
    Block(HwBlock),
    Error(Span),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HwBlock {
    pub kind: Name,
    pub label: Option<Name>,
    pub dims: Option<Vec<Expr>>,
    pub entries: Vec<HwEntry>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HwEntry {
    pub key: Name,
    pub value: HwValue,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HwValue {
    /// `2 MiB per core`; `per` scales a quantity by a count of the hardware.
    Quantity {
        number: Number,
        unit: Option<Name>,
        per: Option<Name>,
        span: Span,
    },
    Word(Name),
    Str {
        text: String,
        span: Span,
    },
    Dims {
        dims: Vec<Expr>,
        span: Span,
    },
    /// `2:4`: an N:M sparsity pattern.
    Ratio {
        n: Number,
        m: Number,
        span: Span,
    },
}

impl HwValue {
    pub fn span(&self) -> Span {
        match self {
            HwValue::Quantity { span, .. }
            | HwValue::Str { span, .. }
            | HwValue::Dims { span, .. }
            | HwValue::Ratio { span, .. } => *span,
            HwValue::Word(n) => n.span,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mapping {
    pub name: Name,
    pub workload: Name,
    pub hardware: Name,
    pub body: Vec<MapStmt>,
    pub span: Span,
}

/// A mapping statement; the knob is a plain name so that a misspelt knob gets
/// a "did you mean" from the checker instead of a syntax error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MapStmt {
    /// `tile y at l1 { i: 64, k: auto in 16..256 pow2 }`.
    Block {
        knob: Name,
        target: Name,
        level: Option<Name>,
        entries: Vec<KnobEntry>,
        span: Span,
    },
    /// `precision w: auto in {f32, bf16} error <= 1e-3`, `partition h: 4`.
    Keyed {
        knob: Name,
        target: Name,
        value: Knob,
        error_bound: Option<Expr>,
        span: Span,
    },
    /// `order i, j, k`, `parallel i over cores`, `swizzle row_major`;
    /// `order y: n, f, p` for the op computing `y` only.
    List {
        knob: Name,
        target: Option<Name>,
        items: Vec<Name>,
        over: Option<Name>,
        span: Span,
    },
    /// `swizzle auto`, `timestep 1 ms`, `swizzle grouped(m: 8)`.
    Value {
        knob: Name,
        value: Knob,
        span: Span,
    },
    Error(Span),
}

impl MapStmt {
    pub fn knob(&self) -> Option<&Name> {
        match self {
            MapStmt::Block { knob, .. }
            | MapStmt::Keyed { knob, .. }
            | MapStmt::List { knob, .. }
            | MapStmt::Value { knob, .. } => Some(knob),
            MapStmt::Error(_) => None,
        }
    }

    pub fn span(&self) -> Span {
        match self {
            MapStmt::Block { span, .. }
            | MapStmt::Keyed { span, .. }
            | MapStmt::List { span, .. }
            | MapStmt::Value { span, .. }
            | MapStmt::Error(span) => *span,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KnobEntry {
    pub dim: Name,
    pub value: Knob,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Knob {
    pub kind: KnobKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KnobKind {
    /// `auto`: the tuner chooses from the knob's whole domain.
    Auto,
    /// `auto in 16..256 pow2`.
    AutoRange { lo: Expr, hi: Expr, pow2: bool },
    /// `auto in {f32, bf16}`.
    AutoSet(Vec<Expr>),
    /// `auto <= 8`, `<= 8`.
    AutoAtMost(Expr),
    /// `64`, `1 ms`, `grouped(m: 8)`, `row_major`.
    Fixed(Expr),
    /// `2:4`.
    Ratio(Expr, Expr),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpDecl {
    pub name: Name,
    /// `<M, K, N>`: sizes bound from the arguments' shapes.
    pub generics: Vec<Name>,
    pub params: Vec<OpParam>,
    pub body: OpBody,
    pub span: Span,
}

/// `a[M, K]` (a tensor), `x` (a scalar), `stride = 1` (a scalar with default).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpParam {
    pub name: Name,
    pub dims: Option<Vec<Expr>>,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OpBody {
    /// `op relu(x) = max(x, 0.0)`: an element-wise scalar function.
    Scalar(Expr),
    /// `op matmul<M, K, N>(a[M, K], b[K, N]) -> c[M, N] { ... }`.
    Tensor {
        result: Name,
        dims: Vec<Expr>,
        body: Vec<Stmt>,
    },
}

/// `neuron lif(tau = 2 ms, threshold = 1.0) { state v = 0.0 ... }`: one
/// neuron's update per timestep; `input` is the synaptic input, `dt` the step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NeuronDecl {
    pub name: Name,
    pub params: Vec<Param>,
    pub body: Vec<NeuronStmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NeuronStmt {
    State { name: Name, init: Expr, span: Span },
    Update { name: Name, value: Expr, span: Span },
    Fire { condition: Expr, span: Span },
    Reset { name: Name, value: Expr, span: Span },
    Error(Span),
}

impl Item {
    /// The declared name, if the declaration has one.
    pub fn name(&self) -> Option<&Name> {
        match self {
            Item::Workload(w) => Some(&w.name),
            Item::Hardware(h) => Some(&h.name),
            Item::Mapping(m) => Some(&m.name),
            Item::Op(o) => Some(&o.name),
            Item::Neuron(n) => Some(&n.name),
            Item::Import(_) | Item::Error(_) => None,
        }
    }

    pub fn kind_word(&self) -> &'static str {
        match self {
            Item::Import(_) => "import",
            Item::Workload(_) => "workload",
            Item::Hardware(_) => "hardware",
            Item::Mapping(_) => "mapping",
            Item::Op(_) => "op",
            Item::Neuron(_) => "neuron",
            Item::Error(_) => "error",
        }
    }
}
