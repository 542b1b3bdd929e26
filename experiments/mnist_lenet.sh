#!/usr/bin/env bash
# LeNet-300-100 and LeNet-5 on the 10,000 real MNIST test digits (first 8,000 train, last
# 2,000 test), with fp32, bf16, and MBM / Mitchell at M = 7, 5, 3.
#
# Usage: experiments/mnist_lenet.sh [EPOCHS] [OUT]   (defaults: 3, experiments/out)
# Runs are resumable: call again with more EPOCHS to extend them (the curves are the same as
# a straight run of that many epochs). Afterwards, experiments/collect.py copies the small
# outputs (CSV, summary, plots) into experiments/results and experiments/figures.
set -euo pipefail
EPOCHS=${1:-3}
OUT=${2:-experiments/out}
DATA=${APPROXSIM_MNIST:-../shared/data/mnist}
MULTS=fp32,bf16,mbm7,mitchell7,mbm5,mitchell5,mbm3,mitchell3
for MODEL in lenet300100 lenet5; do
  approxsim sweep --model "$MODEL" --dataset mnist --data-dir "$DATA" --multipliers "$MULTS" \
    --epochs "$EPOCHS" --batch-size 32 --optimizer adam --lr 1e-3 --seed 0 --backend cpu \
    --out "$OUT/$MODEL" --resume --quiet
done
