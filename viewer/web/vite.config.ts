import { defineConfig } from 'vite';

// Cornerstone3D 5.14 under Vite 8 (FIELD-NOTES.md): the image loader spawns its decoder as an
// ES-module worker, and the dev server must pre-bundle the CommonJS decoders but not the loader
// itself (its `new URL('./decodeImageFrameWorker.js', import.meta.url)` must stay intact).
export default defineConfig({
  base: '/',
  worker: { format: 'es' },
  optimizeDeps: {
    include: [
      'dicom-parser',
      '@cornerstonejs/metadata',
      '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs',
      '@cornerstonejs/codec-charls/decodewasmjs',
      '@cornerstonejs/codec-openjpeg/decodewasmjs',
      '@cornerstonejs/codec-openjph/wasmjs',
    ],
    exclude: ['@cornerstonejs/dicom-image-loader'],
  },
  server: {
    // `npm run dev` against a running `yunying serve` (YUNYING_HTTP_PORT, default 8000).
    proxy: {
      '/api': `http://127.0.0.1:${process.env.YUNYING_HTTP_PORT ?? '8000'}`,
      '/dicomweb': `http://127.0.0.1:${process.env.YUNYING_HTTP_PORT ?? '8000'}`,
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 6000,
    sourcemap: false,
    // dist/.vite/manifest.json: viewer/frontend.py preloads the reading chunk on /read/ URLs from it.
    manifest: true,
  },
});
