//! Binary and zip sizes: the x86-64 release binaries and the arm64 Lambda zips.

use std::{path::Path, process::Command};

use crate::common::{Table, all_functions, lambda_binary, python};

pub(crate) fn zip_size(file: &Path) -> Option<u64> {
    // Deflate the way cargo lambda's --output-format zip does (level 9), with Python's zipfile.
    let out = Command::new(python())
        .args(["-c", "import io,sys,zipfile;b=io.BytesIO();z=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED,compresslevel=9);z.write(sys.argv[1],'bootstrap');z.close();print(len(b.getvalue()))"])
        .arg(file)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

pub(crate) fn sizes(table: &mut Table) {
    for name in all_functions() {
        let bin = lambda_binary(name);
        let raw = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
        let zipped = zip_size(&bin).unwrap_or(0);
        table.add(
            format!("x86-64 release binary / zip, {name}"),
            format!("{:.2} / {:.2}", raw as f64 / 1e6, zipped as f64 / 1e6),
            "MB",
            "",
            "target/x86_64-unknown-linux-gnu/release (scripts/lambda-env), stripped; zip deflate level 9",
        );
    }
    for name in all_functions() {
        let zip = api_tests::root()
            .join("target/lambda")
            .join(name)
            .join("bootstrap.zip");
        match std::fs::metadata(&zip) {
            Ok(m) => table.add(
                format!("arm64 Lambda zip, {name}"),
                format!("{:.2}", m.len() as f64 / 1e6),
                "MB",
                "<= 4",
                "target/lambda/<name>/bootstrap.zip from scripts/build-lambdas",
            ),
            Err(_) => table.add(
                format!("arm64 Lambda zip, {name}"),
                "not built",
                "",
                "<= 4",
                "run scripts/build-lambdas",
            ),
        }
    }
}
