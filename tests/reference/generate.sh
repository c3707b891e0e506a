#!/usr/bin/env bash
# Regenerate the reference inputs (tests/reference/data/*.csv, seeded) and R's outputs
# (tests/reference/results/*.csv) that tests/stats/ compares analysis.stats with.
# Needs R with lme4, geepack, sandwich and MASS (`make reference` installs them on Debian) and the
# project's Python (PYTHON, default .venv/bin/python). The tests themselves never need R.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"

"$python" "$here/data/make_data.py"
mkdir -p "$here/results"
for area in proportions ranks means regression mixed timeseries; do
  Rscript "$here/$area.R"
done
Rscript -e 'cat(R.version.string, "\n", sep = ""); for (p in c("lme4", "geepack", "sandwich", "MASS")) cat(p, " ", as.character(packageVersion(p)), "\n", sep = "")' \
  > "$here/results/versions.txt"
echo "reference results written with: $(head -1 "$here/results/versions.txt")"
# Controlled before-after (analysis/stats/designs.py): its own seeded inputs, then R (sandwich, lme4) and the
# wild cluster bootstrap written out by hand.
"$python" "$here/data/make_designs.py"
Rscript "$here/designs.R"
# Interrupted time series of counts (analysis/stats/its.py): seeded monthly deaths and admissions, then R.
"$python" "$here/data/make_its.py"
Rscript "$here/its.R"
