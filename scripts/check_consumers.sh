#!/usr/bin/env bash
# Run a finished run's exports through the real consumers, each in its own CPU-only virtualenv,
# and print PASS/FAIL per consumer. Not part of CI: LLaMA-Factory alone is a ~6.6 GB venv.
#
#   scripts/check_consumers.sh RUN_DIR [CONSUMER ...]
#
# CONSUMER: datasets-oldest datasets-newest llamafactory ms-swift internvl mis-eval (default: all).
# Virtualenvs live in $MIS_DATA_CONSUMERS_CACHE (default ~/.cache/mis-data-consumers), are built
# on first use (install logs beside them) and reused after; datasets-newest is upgraded each run.
# The checkers are scripts/consumers/*.py; they import nothing from mis-data. See scripts/README.md.
set -uo pipefail

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 RUN_DIR [datasets-oldest|datasets-newest|llamafactory|ms-swift|internvl|mis-eval ...]" >&2
  exit 2
fi
RUN=$(cd "$1" && pwd)
shift
WANTED=("$@")
[ ${#WANTED[@]} -eq 0 ] && WANTED=(datasets-oldest datasets-newest llamafactory ms-swift internvl mis-eval)
HERE=$(cd "$(dirname "$0")/consumers" && pwd)
CACHE=${MIS_DATA_CONSUMERS_CACHE:-$HOME/.cache/mis-data-consumers}
PYTHON=${PYTHON:-python3}
DATASETS_OLDEST=3.6.0
LLAMAFACTORY=0.9.5
MS_SWIFT=4.6.0
# CPU torch: on this kind of machine `pip install torch==2.13.0` takes a local CPU wheel; without
# it pip would pull a multi-GB CUDA build. llamafactory then still upgrades to a CUDA torch.
TORCH=${MIS_DATA_CONSUMERS_TORCH:-torch==2.13.0}
mkdir -p "$CACHE"
# Images per row: the run's images_per_sample (2 unless its config says otherwise).
IMAGES=$(sed -n 's/^ *images_per_sample: *\([0-9]\).*/\1/p' "$RUN/config.yaml" 2>/dev/null | head -1)
IMAGES=${IMAGES:-2}

passed=0
failed=0
report() {  # report STATUS NAME DETAIL
  printf '%-5s %-30s %s\n' "$1" "$2" "$3"
  if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

# install DIR PIP-STEP...: a fresh venv with each step (one quoted `pip install` line) in order.
install() {
  local dir=$1 step
  shift
  "$PYTHON" -m venv "$dir" && "$dir/bin/python" -m pip install --quiet --upgrade pip || return 1
  for step in "$@"; do
    # shellcheck disable=SC2086  # a step is a word list on purpose
    "$dir/bin/python" -m pip install $step || return 1
  done
}

# venv NAME PIP-STEP... -> prints the venv's python. A venv is used only once it has its .ready
# marker, so an interrupted install is redone from scratch.
venv() {
  local name=$1 dir="$CACHE/$1"
  shift
  if [ ! -f "$dir/.ready" ]; then
    rm -rf "$dir"
    install "$dir" "$@" >"$CACHE/$name.log" 2>&1 || return 1
    touch "$dir/.ready"
  fi
  echo "$dir/bin/python"
}

run_check() {  # run_check NAME FOLDER PYTHON SCRIPT ARGS...
  local name=$1 folder=$2 python=$3
  shift 3
  if [ ! -e "$folder" ]; then
    printf '%-5s %-30s %s\n' SKIP "$name" "no $folder"
    return
  fi
  local out status
  out=$("$python" "$@" 2>&1)
  status=$?
  if [ $status -eq 0 ]; then report PASS "$name" "${folder#"$RUN"/}"; else report FAIL "$name" "${folder#"$RUN"/}"; fi
  # The checkers' own lines, without library progress bars and info logs.
  grep -v -E 'examples/s\]|it/s\]|^\[INFO|^INFO|^Generating|^Map|^Loading' <<<"$out" | grep -v '^RESULT ' | sed 's/^/      /'
}

install_failed() {  # install_failed NAME VENV
  report FAIL "$1" "install failed: see $CACHE/$2.log"
  tail -n 5 "$CACHE/$2.log" | sed 's/^/      /'
}

for consumer in "${WANTED[@]}"; do
  case $consumer in
    datasets-oldest)
      if py=$(venv "datasets-$DATASETS_OLDEST" "datasets==$DATASETS_OLDEST pillow"); then
        run_check "datasets $DATASETS_OLDEST" "$RUN/export/hf" "$py" "$HERE/check_hf.py" "$RUN/export/hf" --run-dir "$RUN" --images "$IMAGES"
      else install_failed "datasets $DATASETS_OLDEST" "datasets-$DATASETS_OLDEST"; fi ;;
    datasets-newest)
      if py=$(venv datasets-newest "datasets pillow") &&
         "$py" -m pip install --quiet --upgrade datasets pillow >>"$CACHE/datasets-newest.log" 2>&1; then
        version=$("$py" -c 'import datasets; print(datasets.__version__)')
        run_check "datasets $version (newest)" "$RUN/export/hf" "$py" "$HERE/check_hf.py" "$RUN/export/hf" --run-dir "$RUN" --images "$IMAGES"
      else install_failed "datasets (newest)" datasets-newest; fi ;;
    llamafactory)
      if py=$(venv "llamafactory-$LLAMAFACTORY" "$TORCH" "llamafactory==$LLAMAFACTORY"); then
        run_check "llamafactory $LLAMAFACTORY" "$RUN/export/llamafactory" "$py" "$HERE/check_llamafactory.py" "$RUN/export/llamafactory"
        if [ -f "$RUN/export/vlmguard/dataset_info.json" ]; then  # rewrite: the same sharegpt rows
          run_check "llamafactory $LLAMAFACTORY (vlmguard)" "$RUN/export/vlmguard" "$py" "$HERE/check_llamafactory.py" "$RUN/export/vlmguard"
        fi
      else install_failed "llamafactory $LLAMAFACTORY" "llamafactory-$LLAMAFACTORY"; fi ;;
    ms-swift)
      if py=$(venv "ms-swift-$MS_SWIFT" "$TORCH" "ms-swift==$MS_SWIFT"); then
        lf="$RUN/export/llamafactory" ivl="$RUN/export/internvl"
        files=()
        for f in "$lf/mis_train.jsonl" "$lf/mis_val.jsonl" "$lf/mis_train_internvl_style.jsonl"; do
          [ -f "$f" ] && files+=("$f=$lf")
        done
        for f in "$ivl/mis_train.jsonl" "$ivl/mis_val.jsonl"; do
          [ -f "$f" ] && files+=("$f=$ivl/images")
        done
        run_check "ms-swift $MS_SWIFT" "$lf" "$py" "$HERE/check_swift.py" --images "$IMAGES" "${files[@]}"
      else install_failed "ms-swift $MS_SWIFT" "ms-swift-$MS_SWIFT"; fi ;;
    internvl|mis-eval)
      # stdlib + Pillow checks: any venv with Pillow will do; reuse the small datasets one.
      if py=$(venv "datasets-$DATASETS_OLDEST" "datasets==$DATASETS_OLDEST pillow"); then
        if [ "$consumer" = internvl ]; then
          run_check "internvl (loader rules)" "$RUN/export/internvl/meta.json" "$py" "$HERE/check_internvl.py" "$RUN/export/internvl/meta.json"
        else
          run_check "mis-eval (gpt_eval reading)" "$RUN/export/mis/mis_test" "$py" "$HERE/check_mis_eval.py" "$RUN/export/mis"
        fi
      else install_failed "$consumer" "datasets-$DATASETS_OLDEST"; fi ;;
    *)
      echo "unknown consumer: $consumer" >&2
      exit 2 ;;
  esac
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
