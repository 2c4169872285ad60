/**
 * graft encoder's tokenizer: a BERT-style uncased WordPiece vocabulary trained by Hugging Face's
 * `tokenizers` library (the npm binding of the Rust crate that writes `tokenizer.json`) on the
 * encoder's pretraining text (scripts/text/corpus.ts: Moby-Dick's training chapters only).
 *
 *   node --import tsx scripts/text/make-graft-vocab.ts [--vocab 8000] [--out models/text/graft-encoder]
 *
 * The binding's `train(files)` uses the model's default trainer (30,000 tokens, no options), so the
 * vocabulary is trained at that size and cut to the first `--vocab` tokens: its WordPiece trainer
 * adds tokens in merge order (alphabet first), so the cut is the vocabulary training would have
 * stopped at. The kept tokens are re-assembled with the special tokens first ([PAD] = 0, [UNK],
 * [CLS], [SEP], [MASK]) and saved by the library as tokenizer.json.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { pretrainingSplit } from './corpus.ts';

const require = createRequire(import.meta.url);
type Tok = typeof import('tokenizers');
const tk = require('tokenizers') as Tok;

export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

const { values } = parseArgs({ options: { vocab: { type: 'string', default: '8000' }, out: { type: 'string', default: 'models/text/graft-encoder' } } });
const vocabSize = Number(values.vocab);
const outDir = resolve(values.out!);

function configure(t: InstanceType<Tok['Tokenizer']>): void {
  t.setNormalizer(tk.bertNormalizer({ cleanText: true, handleChineseChars: true, stripAccents: true, lowercase: true }));
  t.setPreTokenizer(tk.bertPreTokenizer());
}

const { train } = pretrainingSplit();
const work = mkdtempSync(join(tmpdir(), 'graft-vocab-'));
try {
  const file = join(work, 'train.txt');
  writeFileSync(file, train.join('\n'));

  const trainer = new tk.Tokenizer(tk.WordPiece.empty());
  configure(trainer);
  trainer.train([file]);
  const learnt = Object.entries(trainer.getVocab(false)).sort((a, b) => a[1] - b[1]).map(([t]) => t);

  const vocab: Record<string, number> = {};
  for (const t of SPECIAL_TOKENS) vocab[t] = Object.keys(vocab).length;
  for (const t of learnt) {
    if (Object.keys(vocab).length >= vocabSize) break;
    if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  }
  const tok = new tk.Tokenizer(tk.WordPiece.init(vocab, { unkToken: '[UNK]', continuingSubwordPrefix: '##', maxInputCharsPerWord: 100 }));
  configure(tok);
  tok.setPostProcessor(tk.bertProcessing(['[SEP]', vocab['[SEP]']!], ['[CLS]', vocab['[CLS]']!]));
  tok.setDecoder(tk.wordPieceDecoder('##', true));
  tok.addSpecialTokens([...SPECIAL_TOKENS]);

  mkdirSync(outDir, { recursive: true });
  tok.save(join(outDir, 'tokenizer.json'), true);
  // What transformers.js (and Python transformers) read next to tokenizer.json.
  writeFileSync(
    join(outDir, 'tokenizer_config.json'),
    JSON.stringify(
      {
        tokenizer_class: 'BertTokenizer',
        do_lower_case: true,
        strip_accents: null,
        tokenize_chinese_chars: true,
        model_max_length: 128,
        pad_token: '[PAD]', unk_token: '[UNK]', cls_token: '[CLS]', sep_token: '[SEP]', mask_token: '[MASK]',
        clean_up_tokenization_spaces: true,
      },
      null,
      2,
    ) + '\n',
  );
  const sample = await tok.encode('Call me Ishmael. Some years ago, never mind how long precisely.');
  process.stderr.write(
    `trained ${learnt.length} tokens, kept ${Object.keys(vocab).length}; wrote ${outDir}/tokenizer.json\n` +
      `sample: ${sample.getTokens().join(' ')}\n`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
