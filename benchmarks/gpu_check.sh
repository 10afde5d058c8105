#!/usr/bin/env bash
# One GPU check, under 5 minutes on a CUDA machine: `recipe-tui check` stages 1–2 on the GPU, short trainings of
# digits-cnn and of a CIFAR-shaped synthetic ResNet-18 in bf16, steps/s of our trainer vs a plain PyTorch loop
# (ratio, target >= 0.97), the NVML readings the status line uses, and a 2-process torchrun run's loss beside a
# single-process one. Without CUDA it runs end to end on the CPU with tiny budgets and says so.
#
#   benchmarks/gpu_check.sh            (from anywhere; uses the repo's .venv, or $PYTHON)
#
# Exit code: the number of sections that failed (0 = all ran). Figures are printed, never asserted.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
RT=("$PY" -m recipe_tui.tui.cli)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
FAILED=0
T0=$SECONDS

section() { printf '\n== %s  (t=%ds)\n' "$1" "$((SECONDS - T0))"; }
ran() { if [ "$1" -ne 0 ]; then echo "!! section failed (exit $1)"; FAILED=$((FAILED + 1)); fi; }
final_loss() { "$PY" -c "import json, sys; d = json.loads(sys.stdin.read().strip().splitlines()[-1]); f = d['final']
print(f\"{d['status']}, {d['steps']} steps, val loss {f['loss']:.4f}\" + (f\", accuracy {f['accuracy']:.2%}\" if 'accuracy' in f else ''))"; }

read -r NGPU GPUNAME < <("$PY" -c 'import torch; n=torch.cuda.device_count() if torch.cuda.is_available() else 0
print(n, torch.cuda.get_device_name(0) if n else "-")')
if [ "$NGPU" -gt 0 ]; then
  DEV=cuda
  echo "gpu_check: $NGPU CUDA device(s), GPU 0: $GPUNAME; torch $("$PY" -c 'import torch; print(torch.__version__)')"
  CHECK_SET=()
  CNN_STEPS=1500; RESNET=(--set train.steps=300); THRU=(--steps 200 --rounds 3); DDP_STEPS=300
else
  DEV=cpu
  echo "gpu_check: no CUDA: no GPU (or no CUDA build of torch) here, so every section runs on the CPU with tiny"
  echo "           budgets to show the script works end to end; none of its figures is a GPU figure."
  # Small check budgets: the CPU run is about the script, not the checks' verdicts.
  CHECK_SET=(--set checks.overfit_steps=60 --set checks.zero_input_steps=40 --set checks.label_folds=2)
  CNN_STEPS=100
  RESNET=(--set train.steps=6 --set train.batch_size=16 --set train.eval_every=6 --set train.eval_batch_size=64
          --set 'data.kwargs={n_train=256, n_val=64}')
  THRU=(--steps 4 --rounds 1); DDP_STEPS=60
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
fi

section "1. recipe-tui check, stages 1-2, digits-cnn on $DEV"
"${RT[@]}" check --recipe digits-cnn --stage 1 --stage 2 --runs "$WORK/runs" --set train.device=$DEV ${CHECK_SET[@]+"${CHECK_SET[@]}"}
rc=$?; [ $rc -eq 1 ] && echo "(exit 1: an item failed or errored; see above)"; [ $rc -le 1 ] || ran $rc

section "2. train digits-cnn on $DEV ($CNN_STEPS steps)"
out=$("${RT[@]}" train --recipe digits-cnn --runs "$WORK/runs" --set train.device=$DEV --set train.steps=$CNN_STEPS \
      --json 2>"$WORK/cnn.err"); rc=$?
[ $rc -eq 0 ] && echo "digits-cnn: $(echo "$out" | final_loss)" || tail -5 "$WORK/cnn.err"; ran $rc

section "3. train synthetic ResNet-18 (3x32x32, bf16 autocast) on $DEV"
out=$("${RT[@]}" --file benchmarks/gpu_recipes.toml train --recipe synthetic-resnet18 --runs "$WORK/runs" \
      --set train.device=$DEV "${RESNET[@]}" --json 2>"$WORK/resnet.err"); rc=$?
[ $rc -eq 0 ] && echo "synthetic-resnet18: $(echo "$out" | final_loss)" || tail -5 "$WORK/resnet.err"; ran $rc

section "4. steps/s: our trainer vs a plain PyTorch loop (resnet18, same options)"
"$PY" benchmarks/gpu_throughput.py --device $DEV "${THRU[@]}"; ran $?

section "5. NVML readings (recipe_tui.core.gpu_monitor, what the status line shows)"
"$PY" - <<'PY'; ran $?
from recipe_tui.core.gpu_monitor import read_once
from recipe_tui.tui.sysinfo import SysSampler, format_reading
r = read_once()
for g in r.gpus:
    print(f"GPU{g.index} {g.name}: util {g.util}%, memory {g.mem_used}/{g.mem_total} B, {g.temperature} °C, "
          f"{g.power}/{g.power_limit} W")
sampler = SysSampler()  # the status line's own sampler and format
sampler.start()
sampler.sample()
print("status line:", format_reading(sampler.sample()))
sampler.close()
if not r.gpus:
    print("no NVML GPUs here (nothing raised): the status line shows CPU and RAM instead")
PY

if [ "$NGPU" -ge 2 ]; then DDP_DEV=cuda; else DDP_DEV=cpu; fi
section "6. torchrun: 2 processes vs 1, digits-mlp, $DDP_STEPS steps, on $DDP_DEV"
[ "$DDP_DEV" = cpu ] && [ "$NGPU" -eq 1 ] && echo "(one GPU: NCCL needs a GPU per process, so this pair runs on the CPU with gloo)"
one=$("${RT[@]}" train --runs "$WORK/ddp" --set train.device=$DDP_DEV --set train.steps=$DDP_STEPS --json 2>"$WORK/one.err"); rc1=$?
two=$("${RT[@]}" train --runs "$WORK/ddp" --nproc 2 --set train.device=$DDP_DEV --set train.steps=$DDP_STEPS --json 2>"$WORK/two.err"); rc2=$?
if [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ]; then
  "$PY" -c 'import json,sys; a,b=(json.loads(s.strip().splitlines()[-1])["final"]["loss"] for s in sys.argv[1:3])
print(f"val loss: 1 process {a:.6f}, 2 processes {b:.6f}, difference {abs(a-b):.2e} (same global batches; reduction order only)")' "$one" "$two"
else tail -5 "$WORK/one.err" "$WORK/two.err"; fi
ran $((rc1 | rc2))

section "done: $FAILED section(s) failed, $((SECONDS - T0)) s in all"
exit $FAILED
