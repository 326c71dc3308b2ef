#!/usr/bin/env bash
# The walk-through of the guide's deployment chapter: three organisations — a server that holds
# the labels, two banks that each hold some columns of some customers — on one machine, each in
# its own directory as it would be on its own host. Needs `spnn` on the PATH
# (cargo install --path crates/spnn-cli). Run it in a copy of deploy/walkthrough.
set -euo pipefail
parties="server holder-0 holder-1"

# ANCHOR: walkthrough
# 1. Certificates: a CA; each party makes its key and request on its own host; the CA signs.
spnn certs ca --out ca
for p in $parties; do
  spnn certs request --party "$p" --out "$p/certs"       # $p/certs/$p.key never leaves $p
  spnn certs sign --ca ca --request "$p/certs/$p.csr" --party "$p" --out "$p/certs"
  cp deployment.toml "$p/"                               # the shared file, to every host
done

# Every command below runs in the party's own directory, with the shared file and its own
# private file.
party() { (cd "$1" && shift && spnn "$@" --config deployment.toml --private private.toml); }

# 2. Align the customers the three have in common (private set intersection).
party holder-0 align --party holder-0 --out aligned.csv & h0=$!
party holder-1 align --party holder-1 --out aligned.csv & h1=$!
party server align --party server --out aligned.csv
wait "$h0"; wait "$h1"

# 3. Train on the aligned rows.
party holder-0 run --party holder-0 & h0=$!
party holder-1 run --party holder-1 & h1=$!
party server run --party server
wait "$h0"; wait "$h1"

# 4. Score every common customer; the scores stay at the server, which owns the labels.
party holder-0 run --party holder-0 & h0=$!
party holder-1 run --party holder-1 & h1=$!
party server predict --tag final --out scores.csv
wait "$h0"; wait "$h1"
# ANCHOR_END: walkthrough
