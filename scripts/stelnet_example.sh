#!/usr/bin/env bash
# The StelNet workflow (Garraffo et al. 2021; METHOD section 8) end to end on
# real catalogs: pretrain a catalog-feature MLP ensemble on MIST v2.5
# isochrones, fine-tune it on a few real stars, and score both on real stars
# neither has seen.
#
#   scripts/stelnet_example.sh [OUT_DIR] [SMALL_SET_SIZE]   (default: out/stelnet 100)
#
# Two cases, each: MIST-only model, MIST + fine-tuned model, and a model trained
# from scratch on the small real set alone, all scored on the same test stars.
#   giants: APOKASC red giants, (log Teff, log g, [Fe/H]) -> log age
#   dh:     David & Hillenbrand early-type stars, (log Teff, log L) -> log age, log mass;
#           the MIST grid includes pre-main-sequence points, so the real pre-MS
#           stars of the ONC and NGC 6530 (outside DH's domain, with their own
#           ages and masses) check that fine-tuning on DH harms nothing there
#           (finetune --check), next to the parent's MIST validation split.
# Fine-tuning uses finetune's defaults: 1000 anchors per member drawn away from
# the new set in input space, batch norms frozen, L2-SP 0.1 (README, "Fine-tuning").
# Needs PyPI access once (scripts/fetch_mist.sh downloads lachesis-grids);
# everything else is offline. Deterministic for the seeds below. About 10
# minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-out/stelnet}"
SMALL="${2:-100}"
mkdir -p "$OUT"
scripts/setup.sh >/dev/null
cargo build --release --quiet
S=target/release/spectrain
GRID="$(scripts/fetch_mist.sh data/mist | tail -1)"

# Splits a real table into a small fine-tuning set and a test set (seeded).
split() { # table small.csv test.csv
    python3 - "$@" "$SMALL" <<'PY'
import sys, pandas as pd
src, small, test, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
d = pd.read_csv(src)
pick = d.sample(n=n, random_state=20211001)
pick.to_csv(small, index=False)
d.drop(pick.index).to_csv(test, index=False)
PY
}

# case NAME FEATURES LABELS REAL_TABLE CHECK_TABLES MIST_ARGS...
# CHECK_TABLES: comma-separated real tables outside the small set's domain ("" for none).
case_run() {
    local name=$1 features=$2 labels=$3 real=$4 checks=$5
    shift 5
    local d="$OUT/$name"
    mkdir -p "$d"
    python3 scripts/mist_table.py "$GRID" --out "$d/mist.csv" --max-rows 20000 "$@"
    split "$real" "$d/small.csv" "$d/test.csv"
    $S -q prepare-table --table "$d/mist.csv" --features "$features" --labels "$labels" --out "$d/mist.h5" --force
    # The small set keeps its label uncertainties (<label>_err) where it has
    # them: finetune's tension uses them.
    local small_labels=$labels
    for l in ${labels//,/ }; do
        if head -1 "$real" | tr ',' '\n' | grep -qx "${l}_err"; then small_labels="$small_labels,${l}_err"; fi
    done
    $S -q prepare-table --table "$d/small.csv" --features "$features" --labels "$small_labels" --id id --missing reject --out "$d/small.h5" --force
    local check_args=()
    for t in ${checks//,/ }; do
        local c="$d/check-$(basename "$t" .csv).h5"
        $S -q prepare-table --table "$t" --features "$features" --labels "$labels" --id id --missing reject --out "$c" --force >/dev/null
        check_args+=(--check "$c")
    done
    $S -q prepare-table --table "$d/test.csv" --features "$features" --labels "$labels" --id id --missing reject --out "$d/test.h5" --force
    $S -q train --arch mlp --data "$d/mist.h5" --out "$d/mist-only" --members 5 --epochs 40 \
        --batch 256 --lr 1e-3 --hidden 128,128,64 --seed 1 --backend cpu --force
    $S -q finetune --model "$d/mist-only" --data "$d/small.h5" --out "$d/finetuned" \
        --steps 200 --lr 1e-3 --batch 32 --anchor "$d/mist.h5" "${check_args[@]}" \
        --seed 2 --backend cpu --force >/dev/null
    echo; cat "$d/finetuned/finetune.md"
    $S -q train --arch mlp --data "$d/small.h5" --columns "$labels" --out "$d/small-only" --members 5 --epochs 200 \
        --batch 32 --lr 1e-3 --hidden 128,128,64 --seed 3 --backend cpu --force >/dev/null
    for m in mist-only finetuned small-only; do
        $S -q evaluate --model "$d/$m" --data "$d/test.h5" --out "$d/report-$m" --backend cpu >/dev/null
    done
    python3 - "$d" "$labels" <<'PY'
import json, sys
d, labels = sys.argv[1], sys.argv[2].split(",")
print(f"\n{d}: test stars never seen by any model")
print("| model | " + " | ".join(f"{l} MAE | {l} r | {l} bias" for l in labels) + " |")
print("|---|" + "---|---|---|" * len(labels))
for m in ["mist-only", "finetuned", "small-only"]:
    r = json.load(open(f"{d}/report-{m}/report.json"))
    cells = []
    for name, v in r["ensemble"]["labels"]:
        cells += [f"{v['mae']:.3f}", f"{v['pearson_r']:.3f}", f"{v['bias']:+.3f}"]
    print(f"| {m} (n={r['spectra']}) | " + " | ".join(cells) + " |")
PY
}

case_run giants log_teff,logg,feh log_age assets/tables/apokasc_giants.csv "" \
    --feh-range -1 0.5 --phases 2 3 --log-age-range 8.9 10.15 --logg-range 1.2 3.6
case_run dh log_teff,log_l log_age,log_mass assets/tables/dh_postzams.csv \
    assets/tables/onc_prezams.csv,assets/tables/ngc6530_prezams.csv \
    --feh 0.0 --phases -1 0 2 --max-mass 20
