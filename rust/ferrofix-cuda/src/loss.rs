//! The causal-LM loss on CUDA: ferrofix-core's contract, launched on the caller's stream.
//!
//! The caller (the binding, on behalf of torch) validates shapes with
//! [`ferrofix_core::loss::Problem`], allocates every buffer and passes raw device pointers;
//! nothing here allocates or synchronises. Launch order on the stream:
//! `ce_count` (label check and valid-row count into `counters`), then either `ce_fused_*`
//! (whole rows per block) or, for few rows of a large vocabulary, `ce_split_stats_*`,
//! `ce_split_finish_*` and `ce_split_grad_*` (several blocks per row and a second
//! reduction), then `ce_reduce` for `mean`/`sum`. A bad label makes every later kernel
//! return without writing; the caller reads `counters[1]` and raises.

use cudarc::driver::{CudaFunction, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg, sys};
use ferrofix_core::dtype::DType;
use ferrofix_core::loss::{LossOptions, Problem, Reduction};

use crate::kernels::{CROSS_ENTROPY, function};
use crate::runtime::{context, device_info, driver_error, guarded};
use crate::{Error, Result};

/// The operation's name in error messages.
const OP: &str = "causal_lm_loss";
/// Threads of the one-block kernels (label count, final reduction).
const SINGLE_BLOCK: u32 = 1024;
/// Largest block of the row kernels (`MAX_THREADS` in `cross_entropy.cu`).
const MAX_THREADS: u32 = 1024;
/// Most blocks of the fused kernel's grid (its first dimension is < 2**31).
const MAX_ROW_BLOCKS: usize = (1 << 31) - 1;
/// Threads per block of the gradient scale.
const SCALE_BLOCK: u32 = 256;
/// Threads per block of the split kernels and of the per-row finish.
const SPLIT_BLOCK: u32 = 512;
const FINISH_BLOCK: u32 = 128;
/// Vocabulary elements one split block should stream at least.
const SPLIT_SPAN: usize = 16_384;
/// Size of one `Stats` record of the split workspace: `{max2, sum, sum_c}` as f32.
pub const STATS_BYTES: usize = 12;

/// The options as the kernels take them (`struct Options` in `cross_entropy.cu`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
struct KernelOptions {
    softcap: f32,
    smoothing: f32,
    z_scale: f32,
    reduction: i32,
    num_items: f32,
}

// SAFETY: a plain `repr(C)` struct of 4-byte scalars, laid out as the kernels' `Options`.
unsafe impl DeviceRepr for KernelOptions {}

impl KernelOptions {
    fn new(options: &LossOptions) -> Self {
        Self {
            softcap: options.softcap.unwrap_or(0.0) as f32,
            smoothing: options.label_smoothing as f32,
            z_scale: options.z_loss_scale as f32,
            reduction: match options.reduction {
                Reduction::Mean => 0,
                Reduction::Sum => 1,
                Reduction::None => 2,
            },
            num_items: options.num_items_in_batch.unwrap_or(0.0) as f32,
        }
    }

    /// No softcap, smoothing or z-loss: the on-chip kernels have a build for that.
    fn is_plain(&self) -> bool {
        self.softcap <= 0.0 && self.smoothing == 0.0 && self.z_scale == 0.0
    }
}

/// How the rows are spread over blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Blocks per row: 1 runs a whole-row kernel, more the vocabulary-split path.
    pub splits: u32,
    /// Threads per block of the row kernels: a multiple of 32 in [32, 1024].
    pub threads: u32,
    /// Rows kept on chip by clusters of this many blocks (1, 2, 4 or 8; more than 1 needs
    /// sm_90), or 0 for the fused kernel that reads each row twice.
    pub cluster: u32,
    /// Row groups the whole-row kernels launch, each taking every `row_blocks`-th row:
    /// blocks of the fused kernel, clusters of the on-chip one; 0 for one per row.
    pub row_blocks: u32,
}

/// What the plan needs to know about the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceShape {
    /// Streaming multiprocessors.
    pub multiprocessors: usize,
    /// L2 cache bytes.
    pub l2_bytes: usize,
    /// Whether blocks can form clusters with distributed shared memory (sm_90 on).
    pub clusters: bool,
    /// Most shared memory one block may opt in to, in bytes.
    pub shared_per_block: usize,
}

/// Shared memory one block of the on-chip kernel stages its span in: bounded so that
/// three blocks fit on an SM of the H100 and a single one on any GPU since Volta.
const STAGING_BUDGET: usize = 72 << 10;
/// Threads per block of the on-chip kernel, also its largest block (`ONCHIP_MAX_THREADS`
/// in `cross_entropy.cu`): small blocks, three to an SM, measured fastest on the H100.
const ONCHIP_BLOCK: u32 = 256;

/// Bytes of shared memory the on-chip kernel stages with: its span of a row, plus room to
/// shift it to the row's alignment mod 16 bytes (`onchip_row` in `cross_entropy.cu`).
pub fn staging_bytes(vocab: usize, element_bytes: usize, cluster: u32) -> usize {
    let span = vocab.div_ceil(cluster.max(1) as usize);
    (span * element_bytes + 16).next_multiple_of(16)
}

impl Plan {
    /// The plan for `rows × vocab` elements of `element_bytes` on `device`: whole rows per
    /// block (or cluster) whenever the rows fill the device or the vocabulary is small,
    /// else enough vocabulary splits to give every SM a few blocks.
    ///
    /// Whole rows stay on chip (read from HBM once) when a cluster of at most 8 blocks can
    /// hold one in shared memory. Otherwise the fused kernel reads each row twice; the
    /// second read comes from L2 only while the rows in flight fit there, so its grid
    /// holds at most half the L2's worth of rows, and never fewer blocks than SMs.
    pub fn choose(rows: usize, vocab: usize, element_bytes: usize, device: DeviceShape) -> Self {
        let sms = device.multiprocessors.max(1);
        let wanted_blocks = 4 * sms;
        let splits = if rows >= wanted_blocks / 2 || vocab < 4 * SPLIT_SPAN {
            1
        } else {
            let by_vocab = vocab / SPLIT_SPAN;
            let by_device = wanted_blocks.div_ceil(rows.max(1));
            by_vocab.min(by_device).clamp(1, 1024)
        };
        let mut plan = Self::with_splits(splits as u32, vocab);
        if splits > 1 {
            return plan;
        }
        let budget = STAGING_BUDGET.min(device.shared_per_block);
        let sizes: &[u32] = if device.clusters { &[1, 2, 4, 8] } else { &[1] };
        let fits = |c: &&u32| staging_bytes(vocab, element_bytes, **c) <= budget;
        if let Some(&cluster) = sizes.iter().find(fits) {
            plan.cluster = cluster;
            plan.threads = plan.threads.min(ONCHIP_BLOCK);
            return plan;
        }
        let row_bytes = (vocab * element_bytes).max(1);
        let in_l2 = device.l2_bytes / 2 / row_bytes;
        plan.row_blocks = in_l2.max(sms).min(rows).clamp(1, MAX_ROW_BLOCKS) as u32;
        plan
    }

    /// The plan with a given number of blocks per row (tests force the split path); with
    /// 1, the fused kernel with one block per row.
    pub fn with_splits(splits: u32, vocab: usize) -> Self {
        if splits > 1 {
            return Self {
                splits,
                threads: SPLIT_BLOCK,
                cluster: 0,
                row_blocks: 0,
            };
        }
        // About 16 elements per thread, in whole warps, at most 1024 threads.
        let threads = vocab.div_ceil(16).div_ceil(32) * 32;
        Self {
            splits: 1,
            threads: threads.clamp(32, MAX_THREADS as usize) as u32,
            cluster: 0,
            row_blocks: 0,
        }
    }

    /// Bytes of device workspace the plan needs (the split path's per-row partials).
    pub fn workspace_bytes(&self, rows: usize) -> usize {
        if self.splits > 1 {
            rows * self.splits as usize * STATS_BYTES
        } else {
            0
        }
    }

    /// Blocks along the grid's first dimension for `rows` rows.
    fn blocks(&self, rows: usize) -> usize {
        let groups = if self.splits == 1 && self.row_blocks > 0 {
            rows.min(self.row_blocks as usize)
        } else {
            rows
        };
        groups * self.cluster.max(1) as usize
    }
}

/// The plan for a call on device `ordinal`. Tests force a path: `splits` blocks per row,
/// or `cluster` (0 for the fused kernel, else the on-chip kernel with clusters of that
/// many blocks); launching checks the combination.
///
/// # Errors
/// As [`device_info`]; [`Error::InvalidArgument`] for `splits` outside [1, 65535].
pub fn plan(
    ordinal: usize,
    rows: usize,
    vocab: usize,
    element_bytes: usize,
    splits: Option<u32>,
    cluster: Option<u32>,
) -> Result<Plan> {
    if let Some(splits) = splits
        && !(1..=65_535).contains(&splits)
    {
        return Err(Error::invalid(
            "splits",
            format!("must be in [1, 65535], got {splits}"),
        ));
    }
    if splits.is_some() || cluster.is_some() {
        let mut plan = Plan::with_splits(splits.unwrap_or(1), vocab);
        if let Some(cluster) = cluster.filter(|&c| c > 0) {
            plan.cluster = cluster;
            plan.threads = plan.threads.min(ONCHIP_BLOCK);
        }
        return Ok(plan);
    }
    let info = device_info(ordinal)?;
    let device = DeviceShape {
        multiprocessors: info.multiprocessors,
        l2_bytes: info.l2_bytes,
        clusters: info.compute_capability.0 >= 9,
        shared_per_block: info.shared_per_block,
    };
    Ok(Plan::choose(rows, vocab, element_bytes, device))
}

/// Device pointers of one call. Every buffer is the caller's, on device `device`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceBuffers {
    /// Contiguous `rows × vocab` logits.
    pub logits: u64,
    /// Where the gradient goes (`rows × vocab`, logits dtype); 0 for none, `logits` for
    /// in place.
    pub grad: u64,
    /// `rows` contiguous labels, int32 or int64.
    pub labels: u64,
    /// Whether the labels are int64.
    pub labels_i64: bool,
    /// `rows` f32: each row's loss (0 where it contributes nothing).
    pub row_loss: u64,
    /// `rows` f32: each row's log-sum-exp (NaN where it contributes nothing).
    pub lse: u64,
    /// 2 i64: valid rows, then the first bad label's position or `i64::MAX`.
    pub counters: u64,
    /// 1 f32: the reduced loss (`mean` and `sum`).
    pub result: u64,
    /// [`Plan::workspace_bytes`] bytes, 16-byte aligned (0 when the plan needs none).
    pub workspace: u64,
}

/// The kernels exist for f32, f16 and bf16 logits.
fn check_dtype(dtype: DType) -> Result<()> {
    if matches!(dtype, DType::Float32 | DType::Float16 | DType::BFloat16) {
        return Ok(());
    }
    Err(Error::UnsupportedDtype {
        dtype: dtype.name().into(),
        op: "causal_lm_loss on CUDA",
        supported: "float32, bfloat16, float16".into(),
    })
}

/// Check what the kernels cannot: dtype, vocabulary width, options, the plan's workspace.
fn validate(
    dtype: DType,
    problem: &Problem,
    options: &LossOptions,
    plan: &Plan,
    buffers: &DeviceBuffers,
) -> Result<()> {
    options.validate()?;
    check_dtype(dtype)?;
    if problem.vocab > i32::MAX as usize {
        return Err(Error::invalid(
            "logits",
            format!(
                "the vocabulary dimension V must be < 2**31 on CUDA, got {}",
                problem.vocab
            ),
        ));
    }
    if plan.splits == 0 || plan.splits > 65_535 {
        return Err(Error::invalid(
            "splits",
            format!("must be in [1, 65535], got {}", plan.splits),
        ));
    }
    if plan.threads == 0 || plan.threads > MAX_THREADS || plan.threads % 32 != 0 {
        return Err(Error::invalid(
            "threads",
            format!(
                "must be a multiple of 32 in [32, {MAX_THREADS}], got {}",
                plan.threads
            ),
        ));
    }
    if !matches!(plan.cluster, 0 | 1 | 2 | 4 | 8) || (plan.cluster > 0 && plan.splits > 1) {
        return Err(Error::invalid(
            "cluster",
            format!(
                "must be 0 (fused), or 1, 2, 4 or 8 with splits=1, got {} with splits={}",
                plan.cluster, plan.splits
            ),
        ));
    }
    if plan.cluster > 0 && plan.threads > ONCHIP_BLOCK {
        return Err(Error::invalid(
            "threads",
            format!(
                "must be at most {ONCHIP_BLOCK} for the on-chip kernel, got {}",
                plan.threads
            ),
        ));
    }
    if plan.splits > 1 && buffers.workspace == 0 {
        return Err(Error::invalid(
            "workspace",
            "the vocabulary-split plan needs a workspace buffer",
        ));
    }
    let required = [
        ("logits", buffers.logits),
        ("labels", buffers.labels),
        ("row_loss", buffers.row_loss),
        ("lse", buffers.lse),
        ("counters", buffers.counters),
        ("result", buffers.result),
    ];
    if let Some((name, _)) = required.iter().find(|(_, pointer)| *pointer == 0) {
        return Err(Error::invalid(
            "buffers",
            format!("{name} must be a device pointer, got null"),
        ));
    }
    Ok(())
}

fn suffix(dtype: DType) -> &'static str {
    match dtype {
        DType::Float16 => "f16",
        DType::BFloat16 => "bf16",
        _ => "f32",
    }
}

fn grid(x: usize, y: u32, threads: u32) -> Result<LaunchConfig> {
    let x = u32::try_from(x)
        .ok()
        .filter(|&x| x < (1 << 31))
        .ok_or_else(|| Error::invalid("logits", format!("too many rows for one launch: {x}")))?;
    Ok(LaunchConfig {
        grid_dim: (x, y, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Launch the loss on `stream` (a raw `CUstream` of device `device`, 0 for the legacy
/// default stream).
///
/// The label check runs first; its result is read back while the row kernels run (the one
/// host wait: for the work queued on the stream before the check, and the check itself).
/// A bad label makes every row kernel return without writing, so the logits stay
/// untouched, and its position comes back; otherwise this returns without waiting for the
/// row kernels, leaving the caller free to queue its next work while they run.
///
/// # Safety
/// Every pointer in `buffers` must be a live allocation on device `device` of the size
/// the field documents for `problem`, and must stay alive until the stream has run the
/// kernels; `stream` must be a live stream of that device's primary context.
///
/// # Errors
/// [`Error::CudaUnavailable`] without a driver, [`Error::UnsupportedDtype`] for f64,
/// [`Error::InvalidArgument`] for bad options, [`Error::Cuda`] when a launch fails.
/// A bad label is not an error here: `Ok(Some(position))` (flat) lets the caller name the
/// value.
#[allow(clippy::too_many_arguments)]
pub unsafe fn launch(
    device: usize,
    stream: u64,
    dtype: DType,
    problem: &Problem,
    options: &LossOptions,
    plan: &Plan,
    buffers: &DeviceBuffers,
) -> Result<Option<usize>> {
    validate(dtype, problem, options, plan, buffers)?;
    let ctx = context(device)?;
    let count = function(&CROSS_ENTROPY, "ce_count", device)?;
    let reduce = function(&CROSS_ENTROPY, "ce_reduce", device)?;
    let kind = suffix(dtype);
    let staging = staging_bytes(problem.vocab, dtype.size(), plan.cluster);
    let row_kernels: Vec<_> = if plan.splits == 1 && plan.cluster > 0 {
        let info = device_info(device)?;
        if plan.cluster > 1 && info.compute_capability.0 < 9 {
            return Err(Error::invalid(
                "cluster",
                format!(
                    "clusters of {} blocks need compute capability 9.0, device {device} has \
                     {}.{}",
                    plan.cluster, info.compute_capability.0, info.compute_capability.1
                ),
            ));
        }
        let shared = info.shared_per_block;
        if staging > shared {
            return Err(Error::invalid(
                "cluster",
                format!(
                    "{} blocks cannot hold a row of {} {} elements on chip ({staging} bytes \
                     of shared memory each, the device allows {shared})",
                    plan.cluster,
                    problem.vocab,
                    dtype.name()
                ),
            ));
        }
        let plain = if KernelOptions::new(options).is_plain() {
            "plain_"
        } else {
            ""
        };
        let name = format!("ce_onchip_{plain}{kind}_c{}", plan.cluster);
        let onchip = function(&CROSS_ENTROPY, &name, device)?;
        guarded(OP, || {
            let attribute =
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
            onchip
                .set_attribute(attribute, staging as i32)
                .map_err(|err| driver_error(&format!("{OP} (cuFuncSetAttribute {name})"), err))
        })?;
        vec![onchip]
    } else if plan.splits == 1 {
        vec![function(
            &CROSS_ENTROPY,
            &format!("ce_fused_{kind}"),
            device,
        )?]
    } else {
        ["stats", "finish", "grad"]
            .iter()
            .map(|step| function(&CROSS_ENTROPY, &format!("ce_split_{step}_{kind}"), device))
            .collect::<Result<_>>()?
    };
    guarded(OP, || {
        // SAFETY: the caller guarantees `stream` is a live stream of this context.
        let stream = unsafe { ctx.wrap_borrowed_stream(stream as sys::CUstream) };
        let fail = |step: &'static str| move |err| driver_error(&format!("{OP} ({step})"), err);
        let scalars = Scalars::new(problem, options, buffers);
        let Scalars {
            labels_i64,
            rows,
            seq_len,
            shift,
            ignore,
            vocab,
            ..
        } = scalars;
        let single = grid(1, 1, SINGLE_BLOCK)?;

        // Every launch below passes the kernel's parameter list in `cross_entropy.cu` one
        // for one; the caller guarantees the pointers and their sizes.
        let mut args = stream.launch_builder(&count);
        args.arg(&buffers.labels)
            .arg(&labels_i64)
            .arg(&rows)
            .arg(&seq_len);
        args.arg(&shift)
            .arg(&ignore)
            .arg(&vocab)
            .arg(&buffers.counters);
        // The count also writes its result straight into this thread's mapped pinned
        // memory (no copy on the stream), and an event marks the count's end; the row
        // kernels are queued before the host waits on that event, so the GPU never idles
        // for the read-back (each row kernel returns at once on a bad label).
        let (pinned, pinned_on_device) = pinned_counters().map_err(fail("cuMemHostAlloc"))?;
        args.arg(&pinned_on_device);
        // SAFETY: arguments match the kernel signature; pointers are the caller's (see
        // above) and `pinned_on_device` maps this thread's 16 bytes of pinned memory.
        unsafe { args.launch(single) }.map_err(fail("ce_count"))?;
        let checked = stream
            .record_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING))
            .map_err(fail("cuEventRecord"))?;
        // Wait for the check even when a later launch fails: the count must not write into
        // the pinned memory while a later call of this thread reads it.
        let queued = queue_rows(
            &stream,
            plan,
            problem,
            &scalars,
            buffers,
            &row_kernels,
            &reduce,
            staging,
        );
        checked
            .synchronize()
            .map_err(fail("waiting for the label check"))?;
        queued?;
        // SAFETY: the count wrote `pinned` before the event completed.
        let first_bad = unsafe { std::ptr::read_volatile(pinned.add(1)) };
        Ok((first_bad != i64::MAX).then(|| usize::try_from(first_bad).unwrap_or(0)))
    })
}

/// Queue the row kernels of `plan`, then the reduction, on `stream` behind the label check
/// (the call's scalar arguments computed once, by `launch`).
#[allow(clippy::too_many_arguments)]
fn queue_rows(
    stream: &CudaStream,
    plan: &Plan,
    problem: &Problem,
    scalars: &Scalars,
    buffers: &DeviceBuffers,
    row_kernels: &[CudaFunction],
    reduce: &CudaFunction,
    staging: usize,
) -> Result<()> {
    let fail = |step: &'static str| move |err| driver_error(&format!("{OP} ({step})"), err);
    let Scalars {
        options: options_arg,
        labels_i64,
        rows,
        seq_len,
        shift,
        ignore,
        vocab,
        reduction,
    } = *scalars;
    let single = grid(1, 1, SINGLE_BLOCK)?;

    if problem.rows > 0 && plan.splits == 1 {
        let mut args = stream.launch_builder(&row_kernels[0]);
        args.arg(&buffers.logits)
            .arg(&buffers.grad)
            .arg(&buffers.labels);
        args.arg(&labels_i64)
            .arg(&rows)
            .arg(&seq_len)
            .arg(&shift)
            .arg(&ignore)
            .arg(&vocab);
        args.arg(&options_arg)
            .arg(&buffers.counters)
            .arg(&buffers.row_loss);
        args.arg(&buffers.lse);
        let mut config = grid(plan.blocks(problem.rows), 1, plan.threads)?;
        let step = if plan.cluster > 0 {
            config.shared_mem_bytes = staging as u32;
            "ce_onchip"
        } else {
            "ce_fused"
        };
        // SAFETY: arguments match the kernel signature (the on-chip kernels take the
        // fused kernels' parameters); pointers are the caller's (see above).
        unsafe { args.launch(config) }.map_err(fail(step))?;
    } else if problem.rows > 0 {
        let splits = plan.splits as i32;
        let split_grid = grid(problem.rows, plan.splits, plan.threads)?;
        let mut args = stream.launch_builder(&row_kernels[0]);
        args.arg(&buffers.logits)
            .arg(&buffers.labels)
            .arg(&labels_i64);
        args.arg(&seq_len)
            .arg(&shift)
            .arg(&ignore)
            .arg(&vocab)
            .arg(&options_arg);
        args.arg(&buffers.counters).arg(&buffers.workspace);
        // SAFETY: arguments match the kernel signature; pointers are the caller's (see above).
        unsafe { args.launch(split_grid) }.map_err(fail("ce_split_stats"))?;

        let mut args = stream.launch_builder(&row_kernels[1]);
        args.arg(&buffers.logits)
            .arg(&buffers.labels)
            .arg(&labels_i64)
            .arg(&rows);
        args.arg(&seq_len)
            .arg(&shift)
            .arg(&ignore)
            .arg(&vocab)
            .arg(&splits);
        args.arg(&options_arg)
            .arg(&buffers.counters)
            .arg(&buffers.workspace);
        args.arg(&buffers.row_loss).arg(&buffers.lse);
        let finish = grid(
            problem.rows.div_ceil(FINISH_BLOCK as usize),
            1,
            FINISH_BLOCK,
        )?;
        // SAFETY: arguments match the kernel signature; pointers are the caller's (see above).
        unsafe { args.launch(finish) }.map_err(fail("ce_split_finish"))?;

        if buffers.grad != 0 {
            let mut args = stream.launch_builder(&row_kernels[2]);
            args.arg(&buffers.logits)
                .arg(&buffers.grad)
                .arg(&buffers.labels);
            args.arg(&labels_i64)
                .arg(&seq_len)
                .arg(&shift)
                .arg(&ignore)
                .arg(&vocab);
            args.arg(&options_arg)
                .arg(&buffers.counters)
                .arg(&buffers.lse);
            // SAFETY: arguments match the kernel signature; pointers are the caller's (see above).
            unsafe { args.launch(split_grid) }.map_err(fail("ce_split_grad"))?;
        }
    }

    if reduction != Reduction::None {
        let mut args = stream.launch_builder(reduce);
        args.arg(&buffers.row_loss).arg(&rows).arg(&options_arg);
        args.arg(&buffers.counters).arg(&buffers.result);
        // SAFETY: arguments match the kernel signature; pointers are the caller's (see above).
        unsafe { args.launch(single) }.map_err(fail("ce_reduce"))?;
    }
    Ok(())
}

/// 16 bytes of mapped pinned host memory for this thread's label-check read-back, as
/// `(host pointer, device address)`: allocated once per thread (portable across contexts)
/// and kept for the thread's life.
fn pinned_counters() -> std::result::Result<(*mut i64, u64), cudarc::driver::DriverError> {
    thread_local! {
        static PINNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    let host = PINNED.with(|cell| {
        if cell.get() == 0 {
            let mut pointer = std::ptr::null_mut();
            let flags = sys::CU_MEMHOSTALLOC_PORTABLE | sys::CU_MEMHOSTALLOC_DEVICEMAP;
            // SAFETY: a valid out-pointer; a context is current (the caller bound it).
            unsafe { sys::cuMemHostAlloc(&mut pointer, 16, flags) }.result()?;
            cell.set(pointer as usize);
        }
        Ok(cell.get() as *mut i64)
    })?;
    let mut device = 0;
    // SAFETY: `host` is a live mapped allocation of this process; the flags must be 0.
    unsafe { sys::cuMemHostGetDevicePointer_v2(&mut device, host.cast(), 0) }.result()?;
    Ok((host, device))
}

/// The scalar kernel arguments of one call, as the kernels take them.
#[derive(Debug, Clone, Copy)]
struct Scalars {
    options: KernelOptions,
    reduction: Reduction,
    labels_i64: i32,
    rows: i64,
    seq_len: i64,
    shift: i32,
    ignore: i64,
    vocab: i32,
}

impl Scalars {
    fn new(problem: &Problem, options: &LossOptions, buffers: &DeviceBuffers) -> Self {
        Self {
            options: KernelOptions::new(options),
            reduction: options.reduction,
            labels_i64: i32::from(buffers.labels_i64),
            rows: problem.rows as i64,
            seq_len: problem.seq_len as i64,
            shift: i32::from(problem.shift),
            ignore: options.ignore_index,
            vocab: problem.vocab as i32,
        }
    }
}

/// Queue `grad[i] *= *scale` over `elements` elements of `dtype` on `stream`: backward's
/// grad_output, read on the device (a scale of 1 returns at once).
///
/// # Safety
/// `grad` must hold `elements` elements of `dtype` and `scale` one f32, both live on
/// device `device` until the stream has run the kernel; `stream` as for [`launch`].
///
/// # Errors
/// As [`launch`].
pub unsafe fn scale_gradient(
    device: usize,
    stream: u64,
    dtype: DType,
    grad: u64,
    elements: usize,
    scale: u64,
) -> Result<()> {
    check_dtype(dtype)?;
    if elements == 0 {
        return Ok(());
    }
    if grad == 0 || scale == 0 {
        return Err(Error::invalid(
            "buffers",
            "grad and scale must be device pointers, got null",
        ));
    }
    let ctx = context(device)?;
    let kernel = function(
        &CROSS_ENTROPY,
        &format!("ce_scale_{}", suffix(dtype)),
        device,
    )?;
    let sms = device_info(device)?.multiprocessors;
    guarded(OP, || {
        // SAFETY: the caller guarantees `stream` is a live stream of this context.
        let stream = unsafe { ctx.wrap_borrowed_stream(stream as sys::CUstream) };
        let n = elements as i64;
        let blocks = elements.div_ceil(SCALE_BLOCK as usize).min(8 * sms);
        let mut args = stream.launch_builder(&kernel);
        args.arg(&grad).arg(&n).arg(&scale);
        // SAFETY: arguments match `ce_scale_*`; pointers are the caller's (see above).
        unsafe { args.launch(grid(blocks, 1, SCALE_BLOCK)?) }
            .map_err(|err| driver_error(&format!("{OP} (ce_scale)"), err))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_keep_rows_on_chip_fuse_or_split() {
        let h100 = DeviceShape {
            multiprocessors: 132,
            l2_bytes: 50 << 20,
            clusters: true,
            shared_per_block: 227 << 10,
        };
        // A 250 KiB bf16 row needs 4 blocks of at most 72 KiB each.
        let big = Plan::choose(8192, 128_256, 2, h100);
        assert_eq!(
            big,
            Plan {
                splits: 1,
                threads: 256,
                cluster: 4,
                row_blocks: 0
            }
        );
        assert_eq!(staging_bytes(128_256, 2, 4), 32_064 * 2 + 16);
        assert_eq!(big.workspace_bytes(8192), 0);
        assert_eq!(big.blocks(8192), 4 * 8192);
        assert_eq!(Plan::choose(8192, 32_000, 2, h100).cluster, 1);
        assert_eq!(Plan::choose(8192, 32_000, 4, h100).cluster, 2);
        assert_eq!(Plan::choose(8192, 151_936, 2, h100).cluster, 8);
        // Too wide for 8 blocks: the fused kernel, on a grid whose rows fit in L2.
        let wide = Plan::choose(8192, 300_000, 4, h100);
        assert_eq!((wide.cluster, wide.threads), (0, 1024));
        assert_eq!(wide.row_blocks, 132); // 21 rows of 1.1 MiB fit, fewer than the SMs
        assert_eq!(wide.blocks(8192), 132);
        // Without clusters (sm_80) only one block holds a row.
        let a100 = DeviceShape {
            multiprocessors: 108,
            l2_bytes: 40 << 20,
            clusters: false,
            shared_per_block: 163 << 10,
        };
        assert_eq!(Plan::choose(8192, 32_000, 2, a100).cluster, 1);
        let fused = Plan::choose(8192, 128_256, 2, a100);
        assert_eq!((fused.cluster, fused.row_blocks), (0, 108));
        let small_vocab = Plan::choose(4, 1000, 4, h100);
        assert_eq!((small_vocab.splits, small_vocab.cluster), (1, 1));
        assert_eq!(small_vocab.threads, 64);
        assert_eq!(small_vocab.blocks(4), 4);
        let few_rows = Plan::choose(4, 262_144, 2, h100);
        assert_eq!(few_rows.splits, 16); // 262144 / 16384, fewer than the device wants
        assert_eq!((few_rows.threads, few_rows.cluster), (SPLIT_BLOCK, 0));
        assert_eq!(few_rows.workspace_bytes(4), 4 * 16 * STATS_BYTES);
        assert_eq!(few_rows.blocks(4), 4);
        assert_eq!(Plan::choose(1, 1, 4, h100).threads, 32);
        // One block per row when nothing says otherwise.
        assert_eq!(Plan::with_splits(1, 5000).blocks(77), 77);
    }

    #[test]
    fn bad_calls_are_rejected_before_any_driver_call() {
        let problem = Problem::new(&[2, 4, 10], &[2, 4], true).unwrap();
        let buffers = DeviceBuffers {
            logits: 16,
            grad: 0,
            labels: 32,
            labels_i64: true,
            row_loss: 48,
            lse: 64,
            counters: 80,
            result: 96,
            workspace: 0,
        };
        let plan = Plan::with_splits(1, 10);
        let options = LossOptions::default();
        let err = validate(DType::Float64, &problem, &options, &plan, &buffers).unwrap_err();
        assert_eq!(
            err.to_string(),
            "causal_lm_loss on CUDA does not support dtype float64; supported: float32, \
             bfloat16, float16"
        );
        let split = Plan::with_splits(4, 10);
        let err = validate(DType::Float32, &problem, &options, &split, &buffers).unwrap_err();
        assert!(err.to_string().starts_with("workspace:"), "{err}");
        for threads in [0, 48, 2048] {
            let odd = Plan { threads, ..plan };
            let err = validate(DType::Float32, &problem, &options, &odd, &buffers).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("threads: must be a multiple of 32 in [32, 1024], got {threads}")
            );
        }
        for (cluster, splits) in [(3, 1), (16, 1), (2, 4)] {
            let odd = Plan {
                cluster,
                splits,
                ..plan
            };
            let err = validate(DType::Float32, &problem, &options, &odd, &buffers).unwrap_err();
            assert!(err.to_string().starts_with("cluster: must be 0"), "{err}");
        }
        let null = DeviceBuffers { lse: 0, ..buffers };
        let err = validate(DType::Float32, &problem, &options, &plan, &null).unwrap_err();
        assert_eq!(
            err.to_string(),
            "buffers: lse must be a device pointer, got null"
        );
        let bad_option = LossOptions {
            label_smoothing: 2.0,
            ..options
        };
        assert!(validate(DType::BFloat16, &problem, &bad_option, &plan, &buffers).is_err());
        assert!(validate(DType::BFloat16, &problem, &options, &plan, &buffers).is_ok());
    }

    #[test]
    fn options_reach_the_kernel_in_its_layout() {
        assert_eq!(std::mem::size_of::<KernelOptions>(), 20);
        let options = LossOptions {
            softcap: Some(30.0),
            reduction: Reduction::Sum,
            ..LossOptions::default()
        };
        let kernel = KernelOptions::new(&options);
        assert_eq!(
            (kernel.softcap, kernel.reduction, kernel.num_items),
            (30.0, 1, 0.0)
        );
    }

    #[test]
    fn only_calls_without_softcap_smoothing_or_z_loss_are_plain() {
        let plain = |options: LossOptions| KernelOptions::new(&options).is_plain();
        let defaults = LossOptions::default();
        assert!(plain(defaults));
        // Reduction and the item count only scale the gradient: the plain build has them.
        assert!(plain(LossOptions {
            reduction: Reduction::Sum,
            num_items_in_batch: Some(7.0),
            ignore_index: 3,
            ..defaults
        }));
        assert!(!plain(LossOptions {
            softcap: Some(30.0),
            ..defaults
        }));
        assert!(!plain(LossOptions {
            label_smoothing: 0.1,
            ..defaults
        }));
        assert!(!plain(LossOptions {
            z_loss_scale: 1e-4,
            ..defaults
        }));
    }
}
