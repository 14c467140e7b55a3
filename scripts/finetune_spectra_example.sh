#!/usr/bin/env bash
# Fine-tuning a DenseNet on spectra, measured on the shared DR10 set: a parent
# trained only on stars below 6200 K, fine-tuned on 60 hotter stars, scored on
# the hot stars it never saw and on the parent's own (cool) validation split.
# Runs finetune four ways from the same parent: the defaults (anchors outside
# the new set's domain, frozen batch norms, L2-SP, domain gate), the same with
# anchors from everywhere in the old domain (--anchor-from everywhere: the hot
# stars are on the same label scale), the defaults without the gate
# (--no-gate), and the old recipe (30 anchors, nothing frozen, no L2-SP, no gate).
#
#   scripts/finetune_spectra_example.sh [OUT_DIR]   (default: out/finetune-spectra)
#
# About 10 minutes on 2 CPU cores. Deterministic for the seeds below.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-out/finetune-spectra}"
DR10="${DR10:-../shared/data/lamost/dr10}"
mkdir -p "$OUT"
scripts/setup.sh >/dev/null
cargo build --release --quiet
S=target/release/spectrain

# Label subsets (prepare keeps only spectra with a label row).
python3 - "$DR10/labels.csv" "$OUT" <<'PY'
import sys, pandas as pd
labels, out = sys.argv[1], sys.argv[2]
d = pd.read_csv(labels)
cool = d[d.teff < 6200]
hot = d[d.teff >= 6200]
new = hot.sample(n=60, random_state=14)
cool.to_csv(f"{out}/cool.csv", index=False)
new.to_csv(f"{out}/hot-new.csv", index=False)
hot.drop(new.index).to_csv(f"{out}/hot-rest.csv", index=False)
PY
for s in cool hot-new hot-rest; do
    $S -q prepare --spectra "$DR10/spectra" --labels "$OUT/$s.csv" --out "$OUT/$s.h5" --force >/dev/null
done
$S -q train --data "$OUT/cool.h5" --out "$OUT/parent" --members 3 --epochs 15 --seed 1 --backend cpu --force >/dev/null

common=(--model "$OUT/parent" --data "$OUT/hot-new.h5" --anchor "$OUT/cool.h5" --check "$OUT/hot-rest.h5"
    --steps 200 --lr 2e-4 --seed 2 --backend cpu --force)
$S -q finetune "${common[@]}" --out "$OUT/defaults" >/dev/null
$S -q finetune "${common[@]}" --out "$OUT/everywhere" --anchor-from everywhere >/dev/null
$S -q finetune "${common[@]}" --out "$OUT/no-gate" --no-gate >/dev/null
$S -q finetune "${common[@]}" --out "$OUT/old-recipe" --no-gate --anchor-count 30 --freeze none --l2sp 0 >/dev/null

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
runs = ["defaults", "everywhere", "no-gate", "old-recipe"]
reports = {r: json.load(open(f"{out}/{r}/finetune.json")) for r in runs}
def sets(r):
    yield "hot set, held-out part", r["held_out"]
    for k, name in [("parent_validation", "cool validation split"),
                    ("parent_validation_outside", "cool validation, outside the hot set's domain")]:
        if r.get(k):
            yield name, r[k]
    for c in r["checks"]:
        yield "hot stars never seen", c
labels = [l["label"] for l in reports["defaults"]["held_out"]["labels"]]
print("MAE change against the parent (" + " / ".join(runs) + ")\n")
print("| set | rows | " + " | ".join(labels) + " |")
print("|---|---|" + "---|" * len(labels))
for i, (name, c) in enumerate(sets(reports["defaults"])):
    cells = []
    for j in range(len(labels)):
        ch = []
        for r in runs:
            l = list(sets(reports[r]))[i][1]["labels"][j]
            ch.append(f"{100 * (l['finetuned']['mae'] / l['parent']['mae'] - 1):+.1f}%")
        cells.append(" / ".join(ch))
    print(f"| {name} | {c['rows']} | " + " | ".join(cells) + " |")
PY
