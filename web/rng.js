// Seeded random numbers the page draws its noise and uniforms from. `aigc_keras/demo.py` has the same
// generator in Python (`PageRandom`), so a test can draw the same numbers the page drew.
//
// Mulberry32 gives 32-bit integers; a uniform is int / 2^32 in [0, 1); a standard normal is
// Box-Muller, sqrt(-2 ln u1) cos(2 pi u2), with u1 in (0, 1]. Values are rounded to float32.

export class PageRandom {
  constructor(seed) {
    this.state = seed >>> 0;
  }

  nextUint32() {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  uniform(count) {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.nextUint32() / 4294967296;
    return out;
  }

  normal(count) {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) {
      const u1 = 1 - this.nextUint32() / 4294967296;
      const u2 = this.nextUint32() / 4294967296;
      out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }
    return out;
  }
}
