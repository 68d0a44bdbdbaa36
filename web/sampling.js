// The next token from logits, by the rules of `aigc_keras/text/sampling.py` (and so of the exported
// `generate` and of `aigc-keras sample`): temperature, then top-k, then top-p, then the token whose
// interval of the cumulative distribution holds the uniform number u; temperature 0 is greedy. The
// `banned` id (the tokenizer's unknown id, from metadata.json) is never drawn: it stands for no character.

const NEG_INF = -1e9;

export function filterLogits(logits, temperature, topK, topP) {
  const vocab = logits.length;
  const scaled = Array.from(logits, (v) => v / Math.max(temperature, 1e-6));
  const ordered = [...scaled].sort((a, b) => b - a);
  const k = topK > 0 && topK < vocab ? topK : vocab;
  const kth = ordered[k - 1];
  const kept = scaled.map((v) => (v < kth ? NEG_INF : v));
  const orderedKept = ordered.map((v) => (v < kth ? NEG_INF : v));
  const probs = softmax(orderedKept);
  let before = 0;
  let keep = 0;
  for (const p of probs) {
    if (before < topP) keep++;
    before += p;
  }
  const cutoff = orderedKept[Math.max(keep, 1) - 1];
  return kept.map((v) => (v < cutoff ? NEG_INF : v));
}

export function softmax(values) {
  const top = Math.max(...values);
  const exps = values.map((v) => Math.exp(v - top));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

export function nextToken(logits, u, temperature, topK, topP, banned = null) {
  if (banned !== null) {
    logits = Float32Array.from(logits);
    logits[banned] = NEG_INF;
  }
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  const probs = softmax(filterLogits(logits, temperature, topK, topP));
  let cdf = 0;
  const cdfs = probs.map((p) => (cdf += p));
  const target = u * cdfs[cdfs.length - 1];
  let drawn = 0;
  for (const c of cdfs) if (c <= target) drawn++;
  return Math.min(drawn, logits.length - 1);
}
