//! Feeds arbitrary text to the deployment-file parser and validator, and for every file it
//! accepts, to each party's policy and roster. Nothing may panic; every refusal is an error
//! naming the file and the field.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("/fuzz/deployment.toml");
    if let Ok(dep) = spnn_cli::config::Deployment::parse(text, path) {
        let roster = dep.roster();
        let _ = dep.addresses();
        for id in roster.ids() {
            let name = roster.name(id).expect("roster names its parties");
            let _ = dep.policy(&name);
            let _ = dep.checkpoint_dir(&name);
        }
    }
});
