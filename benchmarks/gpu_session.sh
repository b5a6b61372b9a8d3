#!/usr/bin/env bash
# The course's checks on a lent GPU machine, in one call (device time is scarce):
#
#     bash benchmarks/gpu_session.sh OUTDIR
#
# 1. Lesson 04 in the gpu profile: wall time, peak kernel memory, and each cell's time
#    (OUTDIR/cells.log), stopped after the cell that ends past GPU_BUDGET seconds.
# 2. Every other solved notebook in the ci profile on the GPU: the CUDA code paths, in seconds.
#    A failure in 1 or 2 is a bug (CI has no GPU, so this is the only place they run).
# 3. bench_gan.py on the GPU for GAN_SECONDS per recipe: images per second and FID.
# 4. bench_gpu_throughput.py (issue 13): the DCGAN's and the conv VAE's images/s, old loop against the GPU
#    path (and with torch.compile), THROUGHPUT_SECONDS per run.
# The gpu profile's lessons run on fake MNIST / CIFAR-10 files of real size (the machine has no network;
# bench_notebooks.py --fake-data): their times and memory are real, their pictures and quality figures are not.
# Knobs (environment): GPU_LESSONS (default 04_gans), GPU_BUDGET (180), CI_LESSONS, GAN_SECONDS (15),
# THROUGHPUT_SECONDS (10), FAKE_DATA (60000 images; 0: the lessons fall back to digits).
# Results go to OUTDIR (Markdown tables and logs) and to the terminal; stderr to OUTDIR/*.err.
#
# The machine has PyTorch but not the Jupyter pieces: if .whl/ holds wheels of them (see
# benchmarks/RESULTS.md for the pip download command), they are installed into /tmp/site first.
set -u -o pipefail
out=${1:?usage: bash benchmarks/gpu_session.sh OUTDIR}
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 GENIMG_DATA=${GENIMG_DATA:-/tmp/genimg_data}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'CUDA', torch.cuda.is_available())"

status=0
budget=${GPU_BUDGET:-180}
for lesson in ${GPU_LESSONS:-04_gans}; do
    timeout $((budget + 60)) python3 benchmarks/bench_notebooks.py --profile gpu --folders solutions --only "$lesson" \
        --budget "$budget" --cell-log "$out/cells.log" --fake-data "${FAKE_DATA:-60000}" 2>>"$out/notebooks.err" \
        | tee -a "$out/notebooks.md" || status=1
done
for lesson in ${CI_LESSONS:-00_ 01_ 02_ 03_ 05_}; do
    timeout 60 python3 benchmarks/bench_notebooks.py --profile ci --no-nbval --folders solutions --only "$lesson" \
        2>>"$out/notebooks.err" | tail -n 1 | tee -a "$out/notebooks.md" || status=1
done
timeout 90 python3 benchmarks/bench_gan.py --device cuda --seconds "${GAN_SECONDS:-15}" 2>"$out/gan.err" \
    | tee "$out/gan.md" || status=1
timeout 300 python3 benchmarks/bench_gpu_throughput.py --device cuda --seconds "${THROUGHPUT_SECONDS:-10}" \
    2>"$out/throughput.err" | tee "$out/throughput.md" || status=1
grep -h -B2 -A12 "Error\|Traceback" "$out/notebooks.err" "$out/gan.err" "$out/throughput.err" | tail -n 60
exit $status
