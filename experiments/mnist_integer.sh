#!/usr/bin/env bash
# LeNet-5 on the 10,000 real MNIST test digits (first 8,000 train, last 2,000 test) with integer
# circuits: exact int8 and uint8, the six EvoApproxLib models of ../shared/reference/evoapprox
# (registered unchanged from their C files) and approxsim's approximate 8-bit built-ins, in both
# quantization-aware training (QAT) and post-training quantization (PTQ).
#
# Usage: experiments/mnist_integer.sh [EPOCHS] [OUT]   (defaults: 3, experiments/out)
# Afterwards, `python experiments/collect.py` copies the small outputs into experiments/results
# and experiments/figures (the pareto figures included).
set -euo pipefail
EPOCHS=${1:-3}
OUT=${2:-experiments/out}
DATA=${APPROXSIM_MNIST:-../shared/data/mnist}
EVO=${APPROXSIM_EVOAPPROX:-../shared/reference/evoapprox}
# The EvoApproxLib files, as they come: the prototype gives the width and signedness where it can.
approxsim register "$EVO/mul8u_1JFF.c" --function mul8u_1JFF --replace
approxsim register "$EVO/mul8u_2AC.c" --function mul8u_2AC --bits 8 --unsigned --replace
approxsim register "$EVO/mul8u_FTA.c" --function mul8u_FTA --bits 8 --unsigned --replace
approxsim register "$EVO/mul8s_1KR3.c" --function mul8s_1KR3 --replace
approxsim register "$EVO/mul8s_1L2H.c" --function mul8s_1L2H --signed --replace
approxsim register "$EVO/mul12u_2EP.c" --function mul12u_2EP --bits 12 --replace
MULTS=fp32,int8,uint8,mul8u_1JFF,mul8u_2AC,mul8u_FTA,mul8s_1KR3,mul8s_1L2H,mul12u_2EP
MULTS=$MULTS,bam8u_v4,bam8u_v6,bam8u_v8,drum8u_k4,drum8u_k6,mitchell8u,kulkarni8u
for MODE in ptq qat; do
  approxsim sweep --model lenet5 --dataset mnist --data-dir "$DATA" --multipliers "$MULTS" --mode "$MODE" \
    --epochs "$EPOCHS" --batch-size 32 --optimizer adam --lr 1e-3 --seed 0 --backend cpu \
    --out "$OUT/lenet5_int_$MODE" --resume --quiet --plot-pareto
done
