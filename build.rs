//! Kernels: compile kernels/*.cu to PTX with nvcc when one is found (NVCC, CUDA_HOME or
//! CUDA_PATH, PATH); otherwise use the committed kernels/ptx/*.ptx, after checking that
//! each was generated from the current sources. Either way the PTX lands in OUT_DIR,
//! where engine/backend/cuda/kernels.rs embeds it.
//!
//! It also writes `launchers.rs`: one typed Rust function per kernel, generated from the
//! kernel's C prototype, so a launch whose arguments disagree with the kernel (count,
//! order, type) fails to compile instead of reading garbage on the GPU.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every kernels/*.cu file by its stem, sorted: the one list of kernel modules.
fn kernel_modules() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("kernels")
        .expect("kernels/ is readable")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let stem = path.file_stem()?.to_string_lossy().into_owned();
            (path.extension()? == "cu").then_some(stem)
        })
        .collect();
    names.sort();
    names
}
const HASH_LINE: &str = "// chainrule-source-sha256: ";

fn source_hash(name: &str) -> String {
    let mut h = Sha256::new();
    for f in ["kernels/common.cuh".to_string(), format!("kernels/{name}.cu")] {
        h.update(std::fs::read(&f).unwrap_or_else(|e| panic!("cannot read {f}: {e}")));
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn find_nvcc() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NVCC") {
        return Some(PathBuf::from(p));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Ok(home) = std::env::var(var) {
            let p = Path::new(&home).join("bin/nvcc");
            if p.exists() {
                return Some(p);
            }
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nvcc"))
            .find(|p| p.exists())
    })
}

fn main() {
    for v in ["NVCC", "CUDA_HOME", "CUDA_PATH"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    println!("cargo:rerun-if-changed=kernels");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let nvcc = find_nvcc();
    let modules = kernel_modules();
    for name in &modules {
        let hash = source_hash(name);
        let target = out.join(format!("{name}.ptx"));
        if let Some(nvcc) = &nvcc {
            let tmp = out.join(format!("{name}.raw.ptx"));
            let status = Command::new(nvcc)
                .args(["-ptx", "-arch=compute_80", "-O3", "-Ikernels", "-o"])
                .arg(&tmp)
                .arg(format!("kernels/{name}.cu"))
                .status()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", nvcc.display()));
            assert!(status.success(), "{} failed on kernels/{name}.cu", nvcc.display());
            let body = std::fs::read_to_string(&tmp).expect("nvcc wrote its output");
            std::fs::write(&target, format!("{HASH_LINE}{hash}\n{body}")).expect("OUT_DIR is writable");
        } else {
            let committed = format!("kernels/ptx/{name}.ptx");
            let text = std::fs::read_to_string(&committed)
                .unwrap_or_else(|e| panic!("{committed}: {e}; run scripts/gen-ptx.sh"));
            let recorded = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix(HASH_LINE))
                .unwrap_or("");
            if recorded != hash {
                panic!(
                    "{committed} is stale: it was not generated from the current kernels/{name}.cu. \
                     Regenerate it with `bash scripts/install-nvcc.sh && bash scripts/gen-ptx.sh` and commit the result."
                );
            }
            std::fs::write(&target, text).expect("OUT_DIR is writable");
        }
    }
    let codes = enums(&modules);
    std::fs::write(out.join("launchers.rs"), generate_launchers(&modules, &codes)).expect("OUT_DIR is writable");
    std::fs::write(out.join("kernel_codes.rs"), generate_codes(&codes)).expect("OUT_DIR is writable");
}

/// One kernel parameter: its name and Rust type (`&impl DevPtr<T>` for pointers).
struct Param {
    name: String,
    rust: String,
    pointer: bool,
    /// A C enum, passed as its i32 value.
    code: bool,
}

/// A C `enum Name { PREFIX_A = 0, PREFIX_B = 1 };` in a kernel file: codes a kernel
/// switches on, generated for Rust so neither side keeps the integers by hand.
struct CEnum {
    /// Where it is defined, under kernels/.
    file: String,
    name: String,
    /// (C name, value).
    values: Vec<(String, i64)>,
}

/// Every C enum in kernels/common.cuh and kernels/*.cu.
fn enums(modules: &[String]) -> Vec<CEnum> {
    let mut out = Vec::new();
    let files = std::iter::once("common.cuh".to_string()).chain(modules.iter().map(|m| format!("{m}.cu")));
    for file in files {
        let path = format!("kernels/{file}");
        let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        for chunk in src.split("\nenum ").skip(1) {
            let (name, rest) = chunk
                .split_once('{')
                .unwrap_or_else(|| panic!("{path}: an enum without '{{'"));
            let (body, _) = rest
                .split_once('}')
                .unwrap_or_else(|| panic!("{path}: enum {name} without '}}'"));
            // A value's `// comment` says what it means to a reader of the C; not a value.
            let body: String = body
                .lines()
                .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
                .collect::<Vec<_>>()
                .join("\n");
            let values = body
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    let (k, n) = v
                        .split_once('=')
                        .unwrap_or_else(|| panic!("{path}: enum {name}: give {v} its value (NAME = N)"));
                    let n = n.trim().parse().unwrap_or_else(|_| panic!("{path}: enum {name}: {v}"));
                    (k.trim().to_string(), n)
                })
                .collect();
            out.push(CEnum {
                file: file.clone(),
                name: name.trim().to_string(),
                values,
            });
        }
    }
    out
}

/// `ACTIVATION_LEAKY_RELU` among `ACTIVATION_*` → `LeakyRelu`.
fn variant_name(c: &str, prefix: &str) -> String {
    c[prefix.len()..]
        .split('_')
        .map(|w| {
            let w = w.to_ascii_lowercase();
            let mut cs = w.chars();
            cs.next()
                .map_or(String::new(), |f| f.to_ascii_uppercase().to_string() + cs.as_str())
        })
        .collect()
}

fn generate_codes(codes: &[CEnum]) -> String {
    let mut s = String::from("// Generated by build.rs from the C enums in kernels/*.cu. Do not edit.\n");
    for e in codes {
        let first = &e.values[0].0;
        let prefix = &first[..=first
            .find('_')
            .unwrap_or_else(|| panic!("enum {}: NAME_VALUE names", e.name))];
        s += &format!(
            "\n/// `enum {}` in kernels/{}.\n#[derive(Clone, Copy, PartialEq, Eq, Debug)]\n#[repr(i32)]\npub enum {} {{\n",
            e.name, e.file, e.name
        );
        for (c, v) in &e.values {
            assert!(
                c.starts_with(prefix),
                "enum {}: {c} does not start with {prefix}",
                e.name
            );
            s += &format!("    /// `{c}`\n    {} = {v},\n", variant_name(c, prefix));
        }
        s += "}\n";
    }
    s
}

/// The Rust type of a C scalar or pointee type as our kernels use them.
fn rust_type(c: &str, kernel: &str, codes: &[CEnum]) -> String {
    if codes.iter().any(|e| e.name == c) {
        return format!("crate::kernels::{c}");
    }
    let rust = match c {
        "float" => "f32",
        "double" => "f64",
        "int" => "i32",
        "unsigned int" => "u32",
        "long long" => "i64",
        "unsigned long long" => "u64",
        // FP8 values travel as their bits.
        "unsigned char" => "u8",
        // 16-bit floats travel as their bits.
        "unsigned short" | "__half" | "__nv_bfloat16" => "u16",
        other => panic!("kernel {kernel}: no Rust type for C type '{other}' (extend rust_type in build.rs)"),
    };
    rust.to_string()
}

/// `(module, kernel, params)` of every `CR_KERNEL void name(...)` in kernels/*.cu.
fn prototypes(modules: &[String], codes: &[CEnum]) -> Vec<(String, String, Vec<Param>)> {
    let mut out = Vec::new();
    for module in modules {
        let path = format!("kernels/{module}.cu");
        let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        for chunk in src.split("CR_KERNEL void ").skip(1) {
            let (name, rest) = chunk
                .split_once('(')
                .unwrap_or_else(|| panic!("{path}: a kernel without '('"));
            let (list, _) = rest
                .split_once(')')
                .unwrap_or_else(|| panic!("{path}: kernel {name} without ')'"));
            let name = name.trim().to_string();
            let params = list
                .split(',')
                .map(|p| {
                    let p = p.replace("const ", "").replace("__restrict__", "");
                    let pointer = p.contains('*');
                    let p = p.replace('*', " ");
                    let words: Vec<&str> = p.split_whitespace().collect();
                    let (ident, ty) = words
                        .split_last()
                        .unwrap_or_else(|| panic!("{path}: kernel {name}: empty parameter"));
                    let c = ty.join(" ");
                    let ty = rust_type(&c, &name, codes);
                    Param {
                        name: format!("{ident}_"),
                        rust: if pointer { format!("&impl DevPtr<{ty}>") } else { ty },
                        pointer,
                        code: codes.iter().any(|e| e.name == c),
                    }
                })
                .collect();
            out.push((module.clone(), name, params));
        }
    }
    out
}

fn generate_launchers(modules: &[String], codes: &[CEnum]) -> String {
    let kernels = prototypes(modules, codes);
    let mut s = String::from("// Generated by build.rs from the prototypes in kernels/*.cu. Do not edit.\n\n");
    s += "/// Every kernel module's PTX, by name.\nconst PTX: &[(&str, &str)] = &[\n";
    for m in modules {
        s += &format!("    (\"{m}\", include_str!(concat!(env!(\"OUT_DIR\"), \"/{m}.ptx\"))),\n");
    }
    s += "];\n\n";
    s += "/// Every kernel, loaded from its module.\npub struct Kernels {\n";
    for (_, name, _) in &kernels {
        s += &format!("    {name}: CudaFunction,\n");
    }
    s += "}\n\nimpl Kernels {\n    pub fn load(ctx: &Arc<CudaContext>) -> Result<Self, DriverError> {\n";
    s += "        let modules = load_modules(ctx)?;\n        Ok(Kernels {\n";
    for (module, name, _) in &kernels {
        s += &format!("            {name}: modules[\"{module}\"].load_function(\"{name}\")?,\n");
    }
    s += "        })\n    }\n";
    for (module, name, params) in &kernels {
        let args: Vec<String> = params.iter().map(|p| format!("{}: {}", p.name, p.rust)).collect();
        s += &format!("\n    /// `{name}` in kernels/{module}.cu.\n    #[allow(clippy::too_many_arguments)]\n");
        s += &format!(
            "    pub fn {name}(&self, stream: &CudaStream, cfg: LaunchConfig, {}) -> Result<(), DriverError> {{\n",
            args.join(", ")
        );
        s += &format!("        let mut b = stream.launch_builder(&self.{name});\n");
        for p in params {
            if p.pointer {
                s += &format!("        {}.push_to(&mut b);\n", p.name);
            } else if p.code {
                s += &format!("        let {0} = {0} as i32;\n        b.arg(&{0});\n", p.name);
            } else {
                s += &format!("        b.arg(&{});\n", p.name);
            }
        }
        s += "        // SAFETY: the arguments are the kernel's own prototype, in order and type.\n";
        s += "        unsafe { b.launch(cfg) }.map(|_| ())\n    }\n";
    }
    s += "}\n";
    s
}
