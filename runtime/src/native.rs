//! Loading and calling a built library (`archc build`'s
//! `lib<workload>.so`): one exported function taking one pointer per
//! argument and returning 0 on success. Timing is the median of repeated
//! calls after warm-up.

use std::ffi::c_void;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum NativeError {
    Load(String),
    /// The function returned a non-zero status.
    Status(i32),
    Arity(usize),
}

impl std::fmt::Display for NativeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NativeError::Load(m) => write!(f, "could not load the library: {m}"),
            NativeError::Status(s) => write!(f, "the built function returned status {s}"),
            NativeError::Arity(n) => write!(
                f,
                "the function takes {n} tensors; the runtime calls at most {MAX_ARGS}"
            ),
        }
    }
}

impl std::error::Error for NativeError {}

/// The most pointers a built function may take.
pub const MAX_ARGS: usize = 16;

/// A buffer aligned to 64 bytes, holding one tensor's bytes.
pub struct Buffer {
    storage: Vec<u8>,
    len: usize,
    offset: usize,
}

impl Buffer {
    pub fn new(bytes: &[u8]) -> Buffer {
        // 64-byte alignment inside an over-allocated buffer (never moved:
        // the vector is not resized after this).
        let storage = vec![0u8; bytes.len() + 64];
        let addr = storage.as_ptr() as usize;
        let offset = (64 - addr % 64) % 64;
        let mut b = Buffer {
            storage,
            len: bytes.len(),
            offset,
        };
        b.bytes_mut().copy_from_slice(bytes);
        b
    }

    pub fn zeroed(len: usize) -> Buffer {
        Buffer::new(&vec![0u8; len])
    }

    pub fn bytes(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.offset..self.offset + self.len]
    }

    fn ptr(&mut self) -> *mut c_void {
        self.bytes_mut().as_mut_ptr().cast()
    }
}

type Ptr = *mut c_void;

/// Loads a library built by archc, binding every symbol now (RTLD_NOW), so
/// that a missing one is an error here rather than an abort mid-call.
#[allow(unsafe_code)]
fn load(path: &Path) -> Result<libloading::Library, NativeError> {
    // SAFETY: loading runs the library's initializers; a library made by
    // archc has none beyond the C runtime's.
    let library = unsafe {
        libloading::os::unix::Library::open(
            Some(path),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
    }
    .map_err(|e| NativeError::Load(e.to_string()))?;
    Ok(library.into())
}

/// A loaded library and its exported workload function.
pub struct Library {
    library: libloading::Library,
    symbol: Vec<u8>,
    arity: usize,
}

impl Library {
    /// Loads `path` and finds `function`, which takes `arity` pointers.
    #[allow(unsafe_code)]
    pub fn open(path: &Path, function: &str, arity: usize) -> Result<Library, NativeError> {
        if arity > MAX_ARGS {
            return Err(NativeError::Arity(arity));
        }
        let library = load(path)?;
        let symbol = function.as_bytes().to_vec();
        // SAFETY: only looks the symbol up; it is called in `call`.
        unsafe { library.get::<unsafe extern "C" fn() -> i32>(&symbol) }
            .map_err(|e| NativeError::Load(e.to_string()))?;
        Ok(Library {
            library,
            symbol,
            arity,
        })
    }

    /// Calls the function on `buffers` (in ABI order; each the size of its
    /// tensor, which the caller guarantees from the manifest).
    #[allow(unsafe_code)]
    pub fn call(&self, buffers: &mut [Buffer]) -> Result<(), NativeError> {
        if buffers.len() != self.arity {
            return Err(NativeError::Arity(buffers.len()));
        }
        let mut p: [Ptr; MAX_ARGS] = [std::ptr::null_mut(); MAX_ARGS];
        for (slot, b) in p.iter_mut().zip(buffers.iter_mut()) {
            *slot = b.ptr();
        }
        macro_rules! call {
            ($($t:ty),*; $($a:expr),*) => {{
                // SAFETY: the function was built with exactly `arity` pointer
                // arguments and an i32 result (the manifest says so); every
                // pointer addresses a live, 64-byte aligned buffer of its
                // tensor's size.
                unsafe {
                    let f = self
                        .library
                        .get::<unsafe extern "C" fn($($t),*) -> i32>(&self.symbol)
                        .map_err(|e| NativeError::Load(e.to_string()))?;
                    f($($a),*)
                }
            }};
        }
        let status = match self.arity {
            0 => call!(; ),
            1 => call!(Ptr; p[0]),
            2 => call!(Ptr, Ptr; p[0], p[1]),
            3 => call!(Ptr, Ptr, Ptr; p[0], p[1], p[2]),
            4 => call!(Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3]),
            5 => call!(Ptr, Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3], p[4]),
            6 => call!(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3], p[4], p[5]),
            7 => call!(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3], p[4], p[5], p[6]),
            8 => {
                call!(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7])
            }
            9 => {
                call!(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8])
            }
            10 => {
                call!(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9])
            }
            11 => {
                call!(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10])
            }
            12 => {
                call!(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11])
            }
            13 => {
                call!(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12])
            }
            14 => {
                call!(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13])
            }
            15 => {
                call!(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14])
            }
            16 => {
                call!(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr; p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15])
            }
            n => return Err(NativeError::Arity(n)),
        };
        if status != 0 {
            return Err(NativeError::Status(status));
        }
        Ok(())
    }
}

/// Wall time of `runs` calls after `warmup` calls, sorted.
pub fn time(
    library: &Library,
    buffers: &mut [Buffer],
    warmup: usize,
    runs: usize,
) -> Result<Vec<Duration>, NativeError> {
    for _ in 0..warmup {
        library.call(buffers)?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        library.call(buffers)?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times)
}

/// The median of sorted durations.
pub fn median(sorted: &[Duration]) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// A loaded library of microbenchmarks (`archc calibrate`): functions of
/// one count, or of one buffer and a count.
pub struct Bench {
    library: libloading::Library,
}

impl Bench {
    #[allow(unsafe_code)]
    pub fn open(path: &Path) -> Result<Bench, NativeError> {
        Ok(Bench {
            library: load(path)?,
        })
    }

    /// Calls `name(count) -> f32` (f64 results when `wide`); returns the
    /// result and the wall time.
    #[allow(unsafe_code)]
    pub fn count(
        &self,
        name: &str,
        count: i64,
        wide: bool,
    ) -> Result<(f64, Duration), NativeError> {
        let start = Instant::now();
        // SAFETY: the calibration module defines `name` with exactly this
        // signature (`calibrate.rs` in arch-codegen).
        let value = unsafe {
            if wide {
                let f = self
                    .library
                    .get::<unsafe extern "C" fn(i64) -> f64>(name.as_bytes())
                    .map_err(|e| NativeError::Load(e.to_string()))?;
                f(count)
            } else {
                let f = self
                    .library
                    .get::<unsafe extern "C" fn(i64) -> f32>(name.as_bytes())
                    .map_err(|e| NativeError::Load(e.to_string()))?;
                f64::from(f(count))
            }
        };
        Ok((value, start.elapsed()))
    }

    /// Calls `name(buffer, count) -> f32`; the buffer must be the size the
    /// function was made for.
    #[allow(unsafe_code)]
    pub fn read(
        &self,
        name: &str,
        buffer: &mut Buffer,
        count: i64,
    ) -> Result<(f64, Duration), NativeError> {
        let start = Instant::now();
        // SAFETY: as above; the buffer outlives the call and has the size
        // the function reads.
        let value = unsafe {
            let f = self
                .library
                .get::<unsafe extern "C" fn(Ptr, i64) -> f32>(name.as_bytes())
                .map_err(|e| NativeError::Load(e.to_string()))?;
            f(buffer.ptr(), count)
        };
        Ok((f64::from(value), start.elapsed()))
    }
}
