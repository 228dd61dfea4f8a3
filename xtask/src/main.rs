//! Project automation: `cargo xtask <command>`.
//!
//! - `ptx [--check]`: build `kernels-rs` to PTX with the nightly toolchain and write it to
//!   `crates/flash-map-cuda/ptx/`; with `--check`, fail if the committed PTX differs, then
//!   assemble it with `ptxas` for sm_70, sm_80 and sm_90 and fail on any error or spill.
//! - `ci`: everything `.ci/run` checks (fmt, clippy, tests per feature set, docs, no_std
//!   build, Miri on the unsafe core, `ptx --check`).
//! - `sass [ARCH]`: assemble the committed PTX for `ARCH` (default sm_90) with `ptxas`,
//!   disassemble it with `nvdisasm` (both fetched from PyPI wheels into `.cache/`), and print
//!   per kernel its instructions and its global-memory instructions by kind and width: what a
//!   probe costs in memory instructions, without a GPU. The SASS goes to `target/sass/`.
//! - `gpu-bundle [DIR]`: build the GPU test and benchmark executables (and the compare
//!   binary, for the rayon thread sweep) into one packed archive beside a `run.sh` that
//!   unpacks and runs them on a CUDA machine within a time budget and packs their logs into
//!   a given directory (three files: the device tool brings back at most eight).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

type Res = Result<(), String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("ptx") => ptx(args.iter().any(|a| a == "--check")),
        Some("ci") => ci(),
        Some("gpu-bundle") => gpu_bundle(args.get(1).map(PathBuf::from)),
        Some("sass") => sass(args.get(1).map_or("sm_90", String::as_str)),
        _ => Err("usage: cargo xtask <ptx [--check] | ci | sass [ARCH] | gpu-bundle [DIR]>".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is in the workspace").to_path_buf()
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(cmd: &mut Command) -> Res {
    eprintln!("xtask: running {cmd:?}");
    let st = cmd.status().map_err(|e| format!("could not start {cmd:?}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {st}"))
    }
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let o = cmd.output().map_err(|e| format!("could not start {cmd:?}: {e}"))?;
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        Ok(text)
    } else {
        Err(format!("{cmd:?} failed: {}\n{text}", o.status))
    }
}

/// A `cargo +nightly` command with the stable toolchain's environment removed.
fn nightly_cargo() -> Command {
    let mut c = Command::new("cargo");
    c.arg("+nightly");
    for v in
        ["RUSTUP_TOOLCHAIN", "CARGO", "RUSTC", "RUSTDOC", "CARGO_TARGET_DIR", "RUSTC_WRAPPER", "CARGO_MANIFEST_DIR"]
    {
        c.env_remove(v);
    }
    c
}

/// The application examples (quickstart first), built into the GPU bundle.
const EXAMPLES: [&str; 6] =
    ["quickstart", "blockchain_state", "order_book", "packet_dedup", "db_index_join", "kmer_count"];

const PTX_OUT: &str = "crates/flash-map-cuda/ptx/flash_map_kernels.ptx";
const ARCHS: [&str; 3] = ["sm_70", "sm_80", "sm_90"];

fn ptx(check: bool) -> Res {
    let root = root();
    if let Err(e) = output(nightly_cargo().arg("--version")) {
        return skip_or_fail(check, &format!("the nightly toolchain is not installed ({e})"));
    }
    let kernels = root.join("kernels-rs");
    // Force a rebuild so that the assembly file is written afresh.
    let lib = kernels.join("src/lib.rs");
    let text = fs::read(&lib).map_err(|e| e.to_string())?;
    fs::write(&lib, text).map_err(|e| e.to_string())?;
    let asm = kernels.join("target/flash_map_kernels.ptx");
    let _ = fs::remove_file(&asm);
    let r = run(nightly_cargo().current_dir(&kernels).args([
        "rustc",
        "--release",
        "--target",
        "nvptx64-nvidia-cuda",
        "-Zbuild-std=core",
        "--",
        "-C",
        "target-cpu=sm_70",
        &format!("--emit=asm={}", asm.display()),
    ]));
    if let Err(e) = r {
        if !kernels.join("target").exists() || output(nightly_cargo().args(["rustc", "--print", "sysroot"])).is_err() {
            return skip_or_fail(check, &e);
        }
        return Err(e);
    }
    let fresh = fs::read_to_string(&asm).map_err(|e| format!("no PTX at {}: {e}", asm.display()))?;
    if fresh.contains("core9panicking") || fresh.contains(".extern .func") {
        return Err("the PTX references external functions (a panicking path?): kernels must be panic-free".into());
    }
    check_kernel_params(&fresh)?;
    let fresh = cap_registers(&fresh)?;
    let out = root.join(PTX_OUT);
    if check {
        // The kernels live outside the root workspace, so `cargo fmt --all` does not see them.
        if output(nightly_cargo().args(["fmt", "--version"])).is_ok() {
            run(nightly_cargo().current_dir(&kernels).args(["fmt", "--check"]))?;
        } else {
            println!("SKIPPED: rustfmt check of kernels-rs (no rustfmt in the nightly toolchain)");
        }
        let committed = fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        if committed != fresh {
            return Err(format!(
                "{PTX_OUT} differs from a fresh build of kernels-rs; run `cargo xtask ptx` and commit"
            ));
        }
        println!("ptx: committed PTX matches a fresh build ({} bytes)", fresh.len());
        return ptxas(&out);
    }
    fs::write(&out, &fresh).map_err(|e| e.to_string())?;
    println!("ptx: wrote {PTX_OUT} ({} bytes)", fresh.len());
    Ok(())
}

/// Writes each kernel's register cap (`TUNING.gpu_register_caps`) into the PTX as a
/// `.maxnreg` directive between its parameter list and its body.
fn cap_registers(ptx: &str) -> Result<String, String> {
    use flash_map_core::abi::Kernel;
    use flash_map_core::tuning::TUNING;
    let mut out = ptx.to_string();
    for k in Kernel::ALL {
        let cap = TUNING.gpu_register_caps[k as usize];
        if cap == 0 {
            continue;
        }
        let head = format!(".visible .entry {}(", k.name());
        let at = out.find(&head).ok_or_else(|| format!("kernel {} is not in the PTX", k.name()))?;
        let body = at
            + out[at..]
                .find(
                    "
{",
                )
                .ok_or("kernel without a body")?;
        out.insert_str(body, &format!("\n.maxnreg {cap}"));
    }
    Ok(out)
}

/// Checks that every kernel of `flash_map_core::abi::Kernel` is in the PTX with exactly one
/// parameter of the size of its `#[repr(C)]` parameter type: the host passes that type by
/// value, so a kernel that took anything else would read garbage.
fn check_kernel_params(ptx: &str) -> Res {
    use flash_map_core::abi::Kernel;
    for k in Kernel::ALL {
        let head = format!(".visible .entry {}(", k.name());
        let at = ptx.find(&head).ok_or_else(|| format!("kernel {} is not in the PTX", k.name()))?;
        let sig = &ptx[at + head.len()..];
        let sig = &sig[..sig.find(')').ok_or("unterminated kernel signature")?];
        let params: Vec<&str> = sig.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
        let want = format!(".param .align 8 .b8 {}_param_0[{}]", k.name(), k.param_size());
        if params != [want.as_str()] {
            return Err(format!("kernel {} takes {params:?}; the host passes one `{want}`", k.name()));
        }
    }
    println!("ptx: every kernel takes its one abi parameter ({} kernels)", Kernel::ALL.len());
    Ok(())
}

fn skip_or_fail(check: bool, why: &str) -> Res {
    if check {
        println!("SKIPPED: xtask ptx --check: {why}");
        Ok(())
    } else {
        Err(why.to_string())
    }
}

/// Finds `ptxas`, fetching the PyPI wheel `nvidia-cuda-nvcc-cu12` into `.cache/` if needed.
fn find_ptxas() -> Result<PathBuf, String> {
    wheel_tool("PTXAS", "ptxas", "nvidia-cuda-nvcc-cu12==12.9.86", "bin/ptxas")
}

/// `nvdisasm`: `$NVDISASM`, or the one cached from the `nvidia-cuda-nvdisasm` wheel.
fn find_nvdisasm() -> Result<PathBuf, String> {
    wheel_tool("NVDISASM", "nvdisasm", "nvidia-cuda-nvdisasm==13.5.37", "bin/nvdisasm")
}

/// A CUDA tool: the path in `$var`, else `.cache/<name>/<name>`, fetched there once from the
/// PyPI wheel `wheel` (the member whose path ends with `member`).
fn wheel_tool(var: &str, name: &str, wheel: &str, member: &str) -> Result<PathBuf, String> {
    if let Ok(p) = env::var(var) {
        return Ok(PathBuf::from(p));
    }
    let cache = root().join(".cache").join(name);
    let bin = cache.join(name);
    if bin.exists() {
        return Ok(bin);
    }
    fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
    let wheels = cache.join("wheel");
    output(Command::new("python3").args(["-m", "pip", "download", "--no-deps", "-q", "-d"]).arg(&wheels).arg(wheel))?;
    let script = "import sys, zipfile, glob, os\n\
                  z = zipfile.ZipFile(glob.glob(os.path.join(sys.argv[1], '*.whl'))[0])\n\
                  n = [n for n in z.namelist() if n.endswith(sys.argv[3])][0]\n\
                  open(sys.argv[2], 'wb').write(z.read(n))\n";
    output(Command::new("python3").args(["-c", script]).arg(&wheels).arg(&bin).arg(member))?;
    output(Command::new("chmod").arg("+x").arg(&bin))?;
    Ok(bin)
}

/// The opcode of one line of `nvdisasm` output (`/*0620*/  @!P0 LD.E.64 R18, ...;`), if
/// the line is an instruction.
fn sass_opcode(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("/*")?;
    let (addr, rest) = rest.split_once("*/")?;
    if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut words = rest.split_whitespace().filter(|w| !w.starts_with('@') && *w != "{" && *w != "}");
    let op = words.next()?.trim_end_matches(';');
    (!op.starts_with('.')).then_some(op)
}

/// Whether `op` reaches global memory: generic or global loads, stores and atomics (not
/// shared, local or constant memory).
fn global_memory_op(op: &str) -> bool {
    let base = op.split('.').next().unwrap_or(op);
    matches!(base, "LD" | "LDG" | "ST" | "STG" | "ATOM" | "ATOMG" | "RED" | "REDG")
}

fn sass(arch: &str) -> Res {
    let root = root();
    let ptxas = find_ptxas()?;
    let nvdisasm = find_nvdisasm()?;
    let dir = root.join("target/sass");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let cubin = dir.join(format!("flash_map_kernels.{arch}.cubin"));
    output(Command::new(&ptxas).args(["-arch", arch]).arg(root.join(PTX_OUT)).arg("-o").arg(&cubin))?;
    let text = output(Command::new(&nvdisasm).arg(&cubin))?;
    let listing = dir.join(format!("flash_map_kernels.{arch}.sass"));
    fs::write(&listing, &text).map_err(|e| e.to_string())?;
    println!("sass: {PTX_OUT} for {arch}, listing in {}", listing.display());
    println!("kernel | instructions | global-memory instructions");
    let mut kernel: Option<(String, usize, std::collections::BTreeMap<String, usize>)> = None;
    let report = |k: Option<(String, usize, std::collections::BTreeMap<String, usize>)>| {
        if let Some((name, n, ops)) = k {
            let total: usize = ops.values().sum();
            let kinds: Vec<String> = ops.iter().map(|(op, c)| format!("{op} {c}")).collect();
            println!("{name} | {n} | {total}: {}", kinds.join(", "));
        }
    };
    for line in text.lines() {
        if let Some(name) = line.strip_prefix(".text.").and_then(|l| l.strip_suffix(':')) {
            report(kernel.take());
            kernel = Some((name.to_string(), 0, Default::default()));
        } else if let (Some((_, n, ops)), Some(op)) = (kernel.as_mut(), sass_opcode(line)) {
            *n += 1;
            if global_memory_op(op) {
                *ops.entry(op.to_string()).or_default() += 1;
            }
        }
    }
    report(kernel);
    Ok(())
}

/// Blocks of the launch size (`TUNING.gpu_block` threads) that fit on one SM of 64K
/// registers and 2,048 threads, for a kernel of `regs` registers per thread (allocated per
/// warp in units of 256).
fn blocks_per_sm(regs: usize) -> usize {
    let block = flash_map_core::tuning::TUNING.gpu_block;
    let per_warp = (regs * 32).div_ceil(256) * 256;
    let warps = 65536 / per_warp.max(1);
    (warps / (block / 32)).min(2048 / block)
}

fn ptxas(ptx: &Path) -> Res {
    let bin = match find_ptxas() {
        Ok(b) => b,
        Err(e) => {
            println!("SKIPPED: ptxas validation: could not obtain ptxas from the nvidia-cuda-nvcc-cu12 wheel ({e})");
            return Ok(());
        }
    };
    for arch in ARCHS {
        let text = output(Command::new(&bin).args(["-arch", arch, "-v"]).arg(ptx).args(["-o", "/dev/null"]))?;
        let mut kernel = String::new();
        let mut spills = Vec::new();
        let mut regs = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.split("Compiling entry function '").nth(1) {
                kernel = rest.split('\'').next().unwrap_or("").to_string();
            }
            if line.contains("spill stores") && !line.contains(" 0 bytes spill stores, 0 bytes spill loads") {
                spills.push(format!("{kernel}: {}", line.trim()));
            }
            if let Some(r) = line.split("Used ").nth(1) {
                let n = r.split(' ').next().unwrap_or("?");
                let blocks = n.parse().map_or("?".to_string(), |n| blocks_per_sm(n).to_string());
                regs.push(format!("{kernel}={n} ({blocks} blocks)"));
            }
            if line.contains("error") {
                return Err(format!("ptxas {arch}: {line}"));
            }
        }
        println!("ptxas {arch}: ok, registers: {}", regs.join(" "));
        if !spills.is_empty() {
            return Err(format!("ptxas {arch}: register spills: {}", spills.join("; ")));
        }
    }
    Ok(())
}

fn ci() -> Res {
    let root = root();
    let c = || {
        let mut c = cargo();
        c.current_dir(&root);
        c
    };
    run(c().args(["fmt", "--all", "--check"]))?;
    // Per feature set, the library crates alone: with the whole workspace, the benches'
    // dependency on `rayon` would switch it on everywhere and hide the other configurations.
    for feats in ["", "rayon", "tokio", "rayon,tokio", "cuda", "cuda,rayon,tokio"] {
        run(c()
            .args(["clippy", "-p", "flash-map", "-p", "flash-map-cpu", "-p", "flash-map-cuda", "-p", "flash-map-core"])
            .args(["--all-targets", "--no-default-features", "--features"])
            .arg(format!("flash-map/cpu-fallback,{}", prefix(feats)))
            .args(["--", "-D", "warnings"]))?;
    }
    run(c().args(["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"]))?;
    // The README's test command: every backend's model tests, docs and examples.
    run(c().args(["test", "--workspace", "--all-features"]))?;
    // The other engines' configurations: serial only, rayon without the umbrella's other
    // features, the async wrapper on the serial engine, and CUDA falling back to serial.
    // Rayon with tokio is the line above less CUDA, which falls back to rayon where no GPU
    // is found, as on CI's machines.
    for feats in ["", "rayon", "tokio", "cuda"] {
        run(c().args(["test", "-p", "flash-map", "-p", "flash-map-cpu", "--features"]).arg(prefix(feats)))?;
    }
    // Shards on the serial engine only (no rayon pools per worker).
    run(c().args(["test", "-p", "flash-map-timely", "--no-default-features"]))?;
    run(c().args(["build", "-p", "flash-map-core", "--target", "thumbv7em-none-eabi"])).or_else(|e| {
        println!("SKIPPED: thumbv7em no_std build ({e}); checking no_std via nvptx in `ptx --check`");
        Ok::<(), String>(())
    })?;
    run(c().args(["doc", "--workspace", "--no-deps", "--all-features"]).env("RUSTDOCFLAGS", "-D warnings"))?;
    miri()?;
    kernel_host_tests()?;
    ptx(true)
}

/// The kernels' bodies on the host (kernels-rs/src/host_tests.rs): their logic and their
/// use of the ABI against a model, without a GPU. The kernel crate needs nightly.
fn kernel_host_tests() -> Res {
    if output(nightly_cargo().args(["--version"])).is_err() {
        println!("SKIPPED: kernel host tests (no nightly toolchain)");
        return Ok(());
    }
    run(nightly_cargo().current_dir(root().join("kernels-rs")).args(["test"]))
}

/// The unsafe core under Miri: flash-map-core's and flash-map-cpu's unit tests (serial and
/// rayon engines). Tree borrows: crossbeam-epoch, under rayon, trips the older stacked-borrows
/// model; rayon's pool outlives the tests, hence ignore-leaks.
fn miri() -> Res {
    if output(nightly_cargo().args(["miri", "--version"])).is_err() {
        println!("SKIPPED: Miri (the nightly `miri` component is not installed)");
        return Ok(());
    }
    run(nightly_cargo().current_dir(root()).env("MIRIFLAGS", "-Zmiri-tree-borrows -Zmiri-ignore-leaks").args([
        "miri",
        "test",
        "-p",
        "flash-map-core",
        "-p",
        "flash-map-cpu",
        "--features",
        "flash-map-cpu/rayon",
    ]))
}

fn prefix(feats: &str) -> String {
    feats.split(',').filter(|f| !f.is_empty()).map(|f| format!("flash-map/{f}")).collect::<Vec<_>>().join(",")
}

fn gpu_bundle(dir: Option<PathBuf>) -> Res {
    let root = root();
    let dir = dir.unwrap_or_else(|| root.join("gpu-bundle"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("bin")).map_err(|e| e.to_string())?;
    let target = root.join("target/bundle");
    let feats = "flash-map/cuda,flash-map/rayon,flash-map/tokio";
    let c = || {
        let mut c = cargo();
        c.current_dir(&root)
            .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
            .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
            .arg("--quiet");
        c
    };
    let json = output(
        c().args([
            "test",
            "--release",
            "--no-run",
            "-p",
            "flash-map",
            "--features",
            feats,
            "--message-format=json",
            "--target-dir",
        ])
        .arg(&target),
    )?;
    let mut tests = Vec::new();
    for line in json.lines() {
        if line.contains("\"test\":true") {
            if let Some(exe) = line.split("\"executable\":\"").nth(1).and_then(|r| r.split('"').next()) {
                let src = PathBuf::from(exe);
                let name = src
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("t")
                    .split('-')
                    .next()
                    .unwrap_or("t")
                    .to_string();
                if name == "examples" {
                    // That test runs the examples from target/; the bundle runs them directly.
                    continue;
                }
                fs::copy(&src, dir.join("bin").join(format!("test_{name}"))).map_err(|e| e.to_string())?;
                tests.push(format!("test_{name}"));
            }
        }
    }
    run(c()
        .args(["build", "--release", "-p", "flash-map", "--features", feats, "--examples", "--target-dir"])
        .arg(&target))?;
    for ex in EXAMPLES.iter().chain(&["gpu_bench", "gpu_join"]) {
        fs::copy(target.join("release/examples").join(ex), dir.join("bin").join(ex)).map_err(|e| e.to_string())?;
    }
    // The compare binary, for issue 13's rayon thread sweep on the machine's host cores.
    run(c().args(["build", "--release", "-p", "flash-map-benches", "--bin", "compare", "--target-dir"]).arg(&target))?;
    fs::copy(target.join("release/compare"), dir.join("bin/compare")).map_err(|e| e.to_string())?;
    // Packed: the executables share most of their code, which xz finds across files (the
    // device tool carries at most 64 MiB, working tree included). gzip where xz is missing.
    let tar =
        |flag: &str, name: &str| run(Command::new("tar").arg(flag).arg(dir.join(name)).arg("-C").arg(&dir).arg("bin"));
    let packed = if tar("-cJf", "bin.tar.xz").is_ok() {
        "bin.tar.xz"
    } else {
        let _ = fs::remove_file(dir.join("bin.tar.xz"));
        tar("-czf", "bin.tar.gz")?;
        "bin.tar.gz"
    };
    fs::remove_dir_all(dir.join("bin")).map_err(|e| e.to_string())?;
    let bytes = fs::metadata(dir.join(packed)).map_err(|e| e.to_string())?.len();
    let script = format!(
        r#"#!/usr/bin/env bash
# flash-map GPU checks: the model and device-API tests against the Cuda backend, the
# quickstart, the benchmark, issue 13's rayon thread sweep, the other tests and the
# examples, most important first.
# Usage: run.sh LOGDIR [BUDGET_S]   (made by `cargo xtask gpu-bundle`)
# Every log goes into LOGDIR/logs.tar.gz; LOGDIR keeps only that, summary.txt and
# device.txt (the device tool brings back at most 8 files). No step runs past BUDGET_S
# seconds (default 520): each one's limit is cut to what is left, and a step with under 10 s
# left is skipped, so the logs are packed before a time limit.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
logs="${{1:-$here/logs}}"; budget="${{2:-520}}"
all="$logs/all"; mkdir -p "$all"
sum="$logs/summary.txt"
bin="${{TMPDIR:-/tmp}}/flash-map-bundle"; rm -rf "$bin"; mkdir -p "$bin"
tar -C "$bin" -xf "$here/{packed}" 2>"$all/unpack.log" \
  || python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$here/{packed}" "$bin" >>"$all/unpack.log" 2>&1 \
  || {{ echo "could not unpack {packed}" | tee -a "$sum"; exit 2; }}
bin="$bin/bin"
export FLASH_MAP_TEST_CUDA=1 RUST_LOG=${{RUST_LOG:-info}}
# Where the driver's library lives on machines that mount it (cudarc opens libcuda.so.1).
export LD_LIBRARY_PATH="${{LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}}/usr/local/nvidia/lib64:/usr/local/cuda/lib64"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv > "$logs/device.txt" 2>&1
{{ nproc; uname -r; ldd --version 2>&1 | head -n 1; ldd "$bin/quickstart"; }} >> "$logs/device.txt" 2>&1
status=0
# step NAME LIMIT_S CMD...: runs CMD (its output to all/NAME.log) for at most LIMIT_S
# seconds and never past the budget; skipped when less than 10 s of it is left.
step() {{
  local name=$1 limit=$2; shift 2
  echo "== $name" >> "$sum"
  local left=$((budget - SECONDS))
  if [ "$left" -lt 10 ]; then echo "SKIPPED: out of time ($SECONDS s)" >> "$sum"; status=1; return; fi
  [ "$limit" -le "$left" ] || limit=$left
  local t0=$SECONDS
  timeout "$limit" "$@" > "$all/$name.log" 2>&1; local rc=$?
  [ $rc -eq 0 ] || status=1
  echo "rc $rc, $((SECONDS - t0)) s" >> "$sum"
}}
for t in test_model test_device; do
  step $t 120 "$bin/$t" --test-threads=4
  grep -E "^test .*(FAILED|ignored)|SKIPPED|panicked" "$all/$t.log" | head -n 20 >> "$sum"
  tail -n 3 "$all/$t.log" >> "$sum" 2>/dev/null
done
RUST_LOG=info,flash_map_cuda=debug step quickstart 60 "$bin/quickstart"
cat "$all/quickstart.log" >> "$sum" 2>/dev/null
step gpu_bench 180 "$bin/gpu_bench"
cat "$all/gpu_bench.log" >> "$sum" 2>/dev/null
step compare_threads 150 "$bin/compare" --threads --w2 800000 --reps 3
grep -E "threads|^\| (FlashMap|papaya|DashMap|Rayon)" "$all/compare_threads.log" >> "$sum" 2>/dev/null
for t in {tests}; do
  case $t in test_model|test_device) continue;; esac
  step "$t" 60 "$bin/$t" --test-threads=4
  grep -E "^test .*FAILED|panicked" "$all/$t.log" | head -n 10 >> "$sum"
  tail -n 3 "$all/$t.log" >> "$sum" 2>/dev/null
done
for ex in {examples}; do
  step "$ex" 60 "$bin/$ex"
  grep -E "verified|ops/s|FlashMap" "$all/$ex.log" 2>/dev/null | tail -n 4 >> "$sum"
done
step gpu_join 90 "$bin/gpu_join"
grep -E "verified|built|probe of" "$all/gpu_join.log" >> "$sum" 2>/dev/null
# Last, with what time is left: the device-API and model tests under compute-sanitizer's
# memcheck (out-of-bounds and misaligned device accesses), where the machine has it. The
# sanitizer runs one kernel at a time, so the test of two maps running side by side cannot
# pass under it (its map B waits behind map A's held stream) and is left out there.
if command -v compute-sanitizer > /dev/null; then
  step memcheck_device 60 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/test_device" \
    --test-threads=1 --skip two_maps_on_one_gpu_run_side_by_side
  step memcheck_model 120 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/test_model" --test-threads=4
  grep -hE "ERROR SUMMARY|Invalid|^test result" "$all"/memcheck_*.log | head -n 20 >> "$sum"
fi
echo "exit status $status after $SECONDS s" >> "$sum"
tar -C "$logs" -czf "$logs/logs.tar.gz" all && rm -rf "$all"
cat "$sum"
exit $status
"#,
        tests = tests.join(" "),
        examples = EXAMPLES[1..].join(" ")
    );
    fs::write(dir.join("run.sh"), script).map_err(|e| e.to_string())?;
    output(Command::new("chmod").arg("+x").arg(dir.join("run.sh")))?;
    println!(
        "gpu-bundle: {} with {} test executables, the examples, gpu_bench and compare in {packed} ({:.1} MiB); \
         run `{}/run.sh LOGDIR [BUDGET_S]` on a CUDA machine",
        dir.display(),
        tests.len(),
        bytes as f64 / (1 << 20) as f64,
        dir.display()
    );
    Ok(())
}
