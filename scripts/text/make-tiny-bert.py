#!/usr/bin/python3
"""
A tiny encoder of the real BERT architecture, exported to ONNX as Hugging Face publishes BERT-family
encoders for JavaScript: the test fixture of graft's ONNX text bases (models/text/tiny-bert/).

    node --import tsx scripts/text/make-graft-vocab.ts --vocab 2000 --out models/text/tiny-bert   # tokenizer files
    /usr/bin/python3 scripts/text/make-tiny-bert.py [--out models/text/tiny-bert] [--seed 0]

Needs PyTorch only (Debian: apt-get install -y python3-torch python3-onnx; run with /usr/bin/python3,
or the torch wheel in $PIP_FIND_LINKS for the default python3). `onnx`, when present, checks the file.

The architecture is BERT's (Devlin et al. 2019; the module and parameter names follow Hugging Face's
BertModel, so its state dict would load there): embeddings = word + position + token type, then
LayerNorm; N post-LN blocks of multi-head self-attention (padded keys masked with a large negative
bias before the softmax) and a GELU (erf) feed-forward, each with a residual and LayerNorm. Here:
hidden 32, 2 blocks, 2 heads, intermediate 64, 128 positions, the WordPiece vocabulary (uncased, 2,000
tokens, trained on Moby-Dick by Hugging Face tokenizers) that make-graft-vocab.ts writes next to it.

The weights are RANDOM (BERT's initialisation, N(0, 0.02), seeded), not pretrained: a fixture for the
plumbing (tokenizer → ONNX Runtime → pooling → head), not a useful encoder. Random embeddings still
keep the tokens apart, so mean-pooled vectors separate classes that differ by their words.

Writes model.onnx (inputs input_ids, attention_mask, token_type_ids: int64 [batch, sequence], dynamic
axes; output last_hidden_state: float32 [batch, sequence, hidden]; opset 14), variants/int32-two-inputs.onnx
(the same weights with DistilBERT's signature: int32 input_ids and attention_mask only), config.json
(Hugging Face's BertConfig fields) and reference.json (torch's outputs on fixed token ids, which the
tests compare ONNX Runtime's with).
"""
import argparse
import json
import math
import os
import sys

import torch
from torch import nn


class Config:
    def __init__(self, vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=128, type_vocab_size=2, layer_norm_eps=1e-12, initializer_range=0.02, pad_token_id=0):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.pad_token_id = pad_token_id


class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids, token_type_ids):
        positions = torch.arange(input_ids.shape[1], dtype=torch.long, device=input_ids.device).unsqueeze(0)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(x)


class BertSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.num_attention_heads
        self.head_size = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def split(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_size).permute(0, 2, 1, 3)

    def forward(self, x, mask_bias):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size) + mask_bias
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3)
        return ctx.reshape(ctx.shape[0], ctx.shape[1], -1)


class BertSelfOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, h, x):
        return self.LayerNorm(self.dense(h) + x)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)

    def forward(self, x, mask_bias):
        return self.output(self.self(x, mask_bias), x)


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = nn.GELU()  # BERT's exact (erf) GELU

    def forward(self, x):
        return self.act(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, h, x):
        return self.LayerNorm(self.dense(h) + x)


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, x, mask_bias):
        a = self.attention(x, mask_bias)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c.num_hidden_layers)])

    def forward(self, x, mask_bias):
        for block in self.layer:
            x = block(x, mask_bias)
        return x


class BertModel(nn.Module):
    """Hugging Face's BertModel without the pooler (sentence vectors are pooled by graft: cls or mean)."""

    def __init__(self, c):
        super().__init__()
        self.config = c
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.apply(self._init)

    def _init(self, m):
        # BertPreTrainedModel._init_weights
        r = self.config.initializer_range
        if isinstance(m, nn.Linear):
            m.weight.data.normal_(0.0, r)
            m.bias.data.zero_()
        elif isinstance(m, nn.Embedding):
            m.weight.data.normal_(0.0, r)
            if m.padding_idx is not None:
                m.weight.data[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            m.weight.data.fill_(1.0)
            m.bias.data.zero_()

    def forward(self, input_ids, attention_mask, token_type_ids):
        # [batch, 1, 1, keys]: 0 where attended, a large negative number on padding.
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0
        return self.encoder(self.embeddings(input_ids, token_type_ids), mask_bias)


class TwoInt32Inputs(nn.Module):
    """The same encoder as a DistilBERT-style graph: int32 input_ids and attention_mask only (no token types: zeros)."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        ids = input_ids.long()
        return self.bert(ids, attention_mask.long(), torch.zeros_like(ids))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='models/text/tiny-bert')
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args()
    out = args.out

    with open(os.path.join(out, 'tokenizer.json'), encoding='utf-8') as f:
        vocab = json.load(f)['model']['vocab']
    with open(os.path.join(out, 'tokenizer_config.json'), encoding='utf-8') as f:
        tok_config = json.load(f)
    pad_id = vocab['[PAD]']

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # bit-reproducible initialisation and reference outputs
    c = Config(vocab_size=len(vocab), max_position_embeddings=tok_config.get('model_max_length', 128), pad_token_id=pad_id)
    model = BertModel(c).eval()

    # A batch with padding (row 0 shorter) for the export trace and the reference outputs.
    cls, sep = vocab['[CLS]'], vocab['[SEP]']
    rows = [[cls, 100, 200, 300, sep], [cls, 400, 500, 600, 700, 800, 900, sep]]
    length = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [pad_id] * (length - len(r)) for r in rows], dtype=torch.long)
    attention_mask = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in rows], dtype=torch.long)
    token_type_ids = torch.zeros_like(input_ids)

    path = os.path.join(out, 'model.onnx')
    with torch.no_grad():
        reference = model(input_ids, attention_mask, token_type_ids)
        torch.onnx.export(
            model,
            (input_ids, attention_mask, token_type_ids),
            path,
            input_names=['input_ids', 'attention_mask', 'token_type_ids'],
            output_names=['last_hidden_state'],
            dynamic_axes={
                'input_ids': {0: 'batch_size', 1: 'sequence_length'},
                'attention_mask': {0: 'batch_size', 1: 'sequence_length'},
                'token_type_ids': {0: 'batch_size', 1: 'sequence_length'},
                'last_hidden_state': {0: 'batch_size', 1: 'sequence_length'},
            },
            opset_version=14,
            do_constant_folding=True,
        )
        # A variant of the same weights with the other common input signature, for the input-discovery tests.
        variant = os.path.join(out, 'variants', 'int32-two-inputs.onnx')
        os.makedirs(os.path.dirname(variant), exist_ok=True)
        torch.onnx.export(
            TwoInt32Inputs(model),
            (input_ids.int(), attention_mask.int()),
            variant,
            input_names=['input_ids', 'attention_mask'],
            output_names=['last_hidden_state'],
            dynamic_axes={
                'input_ids': {0: 'batch_size', 1: 'sequence_length'},
                'attention_mask': {0: 'batch_size', 1: 'sequence_length'},
                'last_hidden_state': {0: 'batch_size', 1: 'sequence_length'},
            },
            opset_version=14,
            do_constant_folding=True,
        )
    try:
        import onnx
        for f in (path, variant):
            onnx.checker.check_model(onnx.load(f))
        checked = 'onnx.checker: ok'
    except ImportError:
        checked = 'onnx not installed: files not checked'

    params = sum(p.numel() for p in model.parameters())
    config = {
        'architectures': ['BertModel'],
        'model_type': 'bert',
        'vocab_size': c.vocab_size,
        'hidden_size': c.hidden_size,
        'num_hidden_layers': c.num_hidden_layers,
        'num_attention_heads': c.num_attention_heads,
        'intermediate_size': c.intermediate_size,
        'hidden_act': 'gelu',
        'hidden_dropout_prob': 0.1,
        'attention_probs_dropout_prob': 0.1,
        'max_position_embeddings': c.max_position_embeddings,
        'type_vocab_size': c.type_vocab_size,
        'initializer_range': c.initializer_range,
        'layer_norm_eps': c.layer_norm_eps,
        'pad_token_id': pad_id,
        'position_embedding_type': 'absolute',
        'graft': {
            'made_by': 'scripts/text/make-tiny-bert.py',
            'seed': args.seed,
            'weights': 'random (BERT initialisation, seeded); not pretrained',
            'parameters': params,
            'torch': torch.__version__,
        },
    }
    with open(os.path.join(out, 'config.json'), 'w', encoding='utf-8') as f:
        json.dump(config, f, indent=2)
        f.write('\n')
    ref = {
        'input_ids': input_ids.tolist(),
        'attention_mask': attention_mask.tolist(),
        'token_type_ids': token_type_ids.tolist(),
        # torch's last_hidden_state, rounded to 7 significant digits (float32 precision)
        'last_hidden_state': [[[float('%.7g' % v) for v in tok] for tok in row] for row in reference.tolist()],
    }
    with open(os.path.join(out, 'reference.json'), 'w', encoding='utf-8') as f:
        json.dump(ref, f)
        f.write('\n')
    sys.stderr.write(f'wrote {path} ({os.path.getsize(path)} bytes, {params} parameters, torch {torch.__version__}); {checked}\n')


if __name__ == '__main__':
    main()
