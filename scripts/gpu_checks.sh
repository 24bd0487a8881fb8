#!/usr/bin/env bash
# The GPU checks of the issues, in one run on a CUDA machine whose Python already has torch,
# lightning, torchmetrics and scikit-learn (wheels for anything else in .whl/, e.g. omegaconf):
#
#   bash scripts/gpu_checks.sh [OUT_DIR]
#
# 1. bench_lm, GPT-2-124M shape, compile + bf16, fused AdamW with clipping (issue 14; first: its MFU and zoo/hand)
# 2. bench_overhead on the GPU: fast path, ordinary loop, hand loop, Lightning floor; digits and MNIST-shaped
#    tensors in GPU memory (issue 14)
# 3. digits_cnn trained on the GPU (issue 3)
# 4. bench_generative: DCGAN, conv VAE and diffusion U-Net on 28x28 digits, GPU vs CPU steps/s (issues 5, 16)
# 5. digits_gan trained on the GPU (issue 5)
# 6. bench_vision: cifar10_resnet on 50k synthetic 3x32x32 images, one epoch, zoo vs a hand loop (issue 12)
# 7. zoo tune's batch-size finder on the GPU (issue 15; digits is small: it stops at the train split)
# 8. digits_diffusion at 28x28 on the GPU: wall time to the quality bar, test/confident and classes (issue 16)
# Each step has its own time limit, so one slow step does not hide the others' figures.
set -u
out=${1:-${OUT:-gpu-checks}}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name())"

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo; echo "=== $name"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  grep -v -e "^GPU available" -e "^TPU available" -e "^LOCAL_RANK" -e "Warning" -e "warn(" "$out/$name.log" | tail -n 25
  echo "=== $name: exit $rc in $((SECONDS - t0)) s"
}

step bench_lm_gpu 210 python3 scripts/bench_lm.py --preset gpt2-124m --compile --repeats 3
step bench_overhead_gpu 300 python3 scripts/bench_overhead.py --device cuda --repeats 3 --epochs 10
step digits_cnn_gpu 90 python3 -m zoo.fit --config configs/experiment/digits_cnn.yaml trainer.accelerator=gpu \
  trainer.enable_progress_bar=false run.dir="$out/runs"
step bench_generative 120 python3 scripts/bench_generative.py
step digits_gan_gpu 80 python3 -m zoo.fit --config configs/experiment/digits_gan.yaml trainer.accelerator=gpu \
  trainer.enable_progress_bar=false run.dir="$out/runs"
step bench_vision_gpu 240 python3 scripts/bench_vision.py --n 50000 --epochs 1 --repeats 2 --device cuda
step tune_batch_size_gpu 120 python3 -m zoo tune --config configs/experiment/digits_cnn.yaml --batch-size \
  trainer.accelerator=gpu trainer.enable_progress_bar=false run.dir="$out/runs"
step digits_diffusion_28_gpu 300 python3 -m zoo.fit --config configs/experiment/digits_diffusion.yaml data.size=28 \
  trainer.accelerator=gpu trainer.enable_progress_bar=false run.dir="$out/runs"
rm -rf "$out/runs"
