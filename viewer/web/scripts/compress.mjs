// Brotli and gzip copies of the built assets (dist/assets/*.br, *.gz), made once at build time:
// viewer/frontend.py serves the one the browser accepts. The viewer's 3.3 MB chunk crosses a
// township's 4 Mbit/s line in about 7 s as it is, under 2 s compressed.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const assets = new URL('../dist/assets/', import.meta.url);
let before = 0;
let after = 0;
for (const name of readdirSync(assets)) {
  if (!/\.(js|mjs|css|wasm|json|svg)$/.test(name)) continue;
  const data = readFileSync(new URL(name, assets));
  if (data.length < 1024) continue;
  const brotli = brotliCompressSync(data, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length },
  });
  writeFileSync(new URL(`${name}.br`, assets), brotli);
  writeFileSync(new URL(`${name}.gz`, assets), gzipSync(data, { level: 9 }));
  before += data.length;
  after += brotli.length;
}
console.log(`compressed assets: ${(before / 1e6).toFixed(2)} MB, brotli ${(after / 1e6).toFixed(2)} MB`);
