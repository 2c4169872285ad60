"""PyTorch reference for graft's feature-extraction benchmark (bench/features.ts).

Defines the two bases graft converts, layer for layer as Keras defines them (torchvision is not
needed): MobileNetV2 1.0 at 224 up to `out_relu` and InceptionV3 at 299 up to `mixed10`, with random
weights. Times one inference batch on N threads per command, eager (`model.eval()` under `torch.inference_mode()`,
what a Python user writes) or optimised (`torch.jit.freeze` + `optimize_for_inference`: BatchNorm
folded, oneDNN convolutions), and a float32 GEMM; counts each model's FLOPs (2 x multiply-adds of
convolutions) so the caller can check that both sides run the same architecture.

A server on stdin/stdout, one JSON line each way, so bench/features.ts can interleave engines round
by round (a shared machine's load then weighs on every engine alike):

  python3 bench/torch_features.py --threads 2 --batch 32 [--models mobilenet_v2,inception_v3]
  <- {"ready": {"torch", "threads", "batch", "models": {name: {"flopsPerImage", ...}}}}
  -> {"cmd": "run", "model": "mobilenet_v2", "mode": "eager" | "optimized"}   <- {"seconds"}
  -> {"cmd": "gemm", "n": 2048}                                              <- {"seconds", "flops"}
"""
import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBN(nn.Sequential):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as Keras) -> optional activation; 'same' as TF pads it."""

    def __init__(self, cin, cout, k, stride=1, groups=1, act="relu6", same=True):
        kh, kw = (k, k) if isinstance(k, int) else k
        layers = []
        padding = 0
        if same and stride == 1:
            # TF 'same' at stride 1 with odd kernels is symmetric: the conv pads itself.
            padding = (kh // 2, kw // 2)
        elif same:
            # TF 'same' at stride 2 on even sizes pads (0, 1): Keras' MobileNetV2 writes it as ZeroPadding2D.
            layers.append(nn.ZeroPad2d((0, 1, 0, 1)))
        layers.append(nn.Conv2d(cin, cout, (kh, kw), stride, padding, groups=groups, bias=False))
        layers.append(nn.BatchNorm2d(cout, eps=1e-3))
        if act == "relu6":
            layers.append(nn.ReLU6(inplace=True))
        elif act == "relu":
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers.append(ConvBN(cin, hidden, 1))
        layers += [ConvBN(hidden, hidden, 3, stride, groups=hidden), ConvBN(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """keras.applications.MobileNetV2(alpha=1.0, 224) without its top: ends at out_relu (7x7x1280)."""

    def __init__(self):
        super().__init__()
        layers = [ConvBN(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(ConvBN(cin, 1280, 1))
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return self.features(x)


def cbr(cin, cout, k, stride=1, valid=False):
    # Keras' conv2d_bn: Conv(bias=False) -> BN(scale=False, eps 1e-3) -> ReLU; stride-1 'same' only.
    return ConvBN(cin, cout, k, stride, act="relu", same=not valid)


def avg_same():
    return nn.AvgPool2d(3, 1, 1, count_include_pad=False)


class Branches(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], 1)


class Split(nn.Module):
    """Keras mixed9/10: a stem, then two parallel convs on its output, concatenated."""

    def __init__(self, stem, a, b):
        super().__init__()
        self.stem, self.a, self.b = stem, a, b

    def forward(self, x):
        y = self.stem(x)
        return torch.cat([self.a(y), self.b(y)], 1)


def mixed_35(cin, pool):
    return Branches(
        cbr(cin, 64, 1),
        nn.Sequential(cbr(cin, 48, 1), cbr(48, 64, 5)),
        nn.Sequential(cbr(cin, 64, 1), cbr(64, 96, 3), cbr(96, 96, 3)),
        nn.Sequential(avg_same(), cbr(cin, pool, 1)),
    )


def mixed_17(c7):
    return Branches(
        cbr(768, 192, 1),
        nn.Sequential(cbr(768, c7, 1), cbr(c7, c7, (1, 7)), cbr(c7, 192, (7, 1))),
        nn.Sequential(cbr(768, c7, 1), cbr(c7, c7, (7, 1)), cbr(c7, c7, (1, 7)), cbr(c7, c7, (7, 1)), cbr(c7, 192, (1, 7))),
        nn.Sequential(avg_same(), cbr(768, 192, 1)),
    )


def mixed_8x8(cin):
    return Branches(
        cbr(cin, 320, 1),
        Split(cbr(cin, 384, 1), cbr(384, 384, (1, 3)), cbr(384, 384, (3, 1))),
        Split(nn.Sequential(cbr(cin, 448, 1), cbr(448, 384, 3)), cbr(384, 384, (1, 3)), cbr(384, 384, (3, 1))),
        nn.Sequential(avg_same(), cbr(cin, 192, 1)),
    )


class InceptionV3(nn.Module):
    """keras.applications.InceptionV3 (299) without its top: ends at mixed10 (8x8x2048)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            cbr(3, 32, 3, 2, valid=True), cbr(32, 32, 3, valid=True), cbr(32, 64, 3), nn.MaxPool2d(3, 2),
            cbr(64, 80, 1, valid=True), cbr(80, 192, 3, valid=True), nn.MaxPool2d(3, 2),
            mixed_35(192, 32), mixed_35(256, 64), mixed_35(288, 64),
            Branches(cbr(288, 384, 3, 2, valid=True), nn.Sequential(cbr(288, 64, 1), cbr(64, 96, 3), cbr(96, 96, 3, 2, valid=True)), nn.MaxPool2d(3, 2)),
            mixed_17(128), mixed_17(160), mixed_17(160), mixed_17(192),
            Branches(
                nn.Sequential(cbr(768, 192, 1), cbr(192, 320, 3, 2, valid=True)),
                nn.Sequential(cbr(768, 192, 1), cbr(192, 192, (1, 7)), cbr(192, 192, (7, 1)), cbr(192, 192, 3, 2, valid=True)),
                nn.MaxPool2d(3, 2),
            ),
            mixed_8x8(1280), mixed_8x8(2048),
        )

    def forward(self, x):
        return self.features(x)


MODELS = {"mobilenet_v2": (MobileNetV2, 224), "inception_v3": (InceptionV3, 299)}


def randomize_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def count_flops(model, size):
    flops = 0

    def hook(m, inp, out):
        nonlocal flops
        kh, kw = m.kernel_size
        flops += 2 * out.shape[2] * out.shape[3] * out.shape[1] * kh * kw * (m.in_channels // m.groups)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return flops, list(out.shape[1:])


def gemm_seconds(n):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t = time.perf_counter()
    torch.mm(a, b)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--models", default="mobilenet_v2,inception_v3")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ready = {"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch, "models": {}}
    runners = {}
    with torch.inference_mode():
        for name in args.models.split(","):
            cls, size = MODELS[name]
            model = cls().eval()
            randomize_bn(model)
            flops, out_shape = count_flops(model, size)
            x = torch.rand(args.batch, 3, size, size)
            optimized = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x[:1])))
            # Warm-up at the benchmark's batch size (allocations, oneDNN primitives for these shapes).
            model(x)
            optimized(x)
            optimized(x)
            runners[(name, "eager")] = (model, x)
            runners[(name, "optimized")] = (optimized, x)
            ready["models"][name] = {"input": [size, size, 3], "outputShape": out_shape, "flopsPerImage": flops}
    print(json.dumps({"ready": ready}), flush=True)
    # One command per line, one JSON answer per line: the caller interleaves engines round by round.
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "run":
            fn, x = runners[(cmd["model"], cmd["mode"])]
            with torch.inference_mode():
                t = time.perf_counter()
                fn(x)
                seconds = time.perf_counter() - t
            print(json.dumps({"seconds": seconds}), flush=True)
        elif cmd["cmd"] == "gemm":
            print(json.dumps({"seconds": gemm_seconds(cmd["n"]), "flops": 2 * cmd["n"] ** 3}), flush=True)
        elif cmd["cmd"] == "quit":
            break


if __name__ == "__main__":
    main()
