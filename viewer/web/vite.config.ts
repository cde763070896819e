import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// What stands in for the parts of vtk.js left out of the build (resolve.alias below).
const leftOut = fileURLToPath(new URL('./src/viewer/left-out.ts', import.meta.url));

// Cornerstone3D 5.14 under Vite 8 (FIELD-NOTES.md): the image loader spawns its decoder as an
// ES-module worker, and the dev server must pre-bundle the CommonJS decoders but not the loader
// itself (its `new URL('./decodeImageFrameWorker.js', import.meta.url)` must stay intact).
export default defineConfig({
  base: '/',
  resolve: {
    // vtk.js's mesh readers, which Cornerstone core and its orientation-marker tool import at their
    // top level, are replaced by src/viewer/left-out.ts (a reader that throws): Yunying shows
    // stacks of images, never meshes, and they bring an XML builder, a DOM and a YAML parser into
    // the viewer's chunk (docs/performance.md).
    alias: [
      {
        find: /^@kitware\/vtk\.js\/IO\/(Geometry\/(PLY|STL)Reader|XML\/XMLPolyDataReader|Misc\/(OBJ|MTL)Reader)\.js$/,
        replacement: leftOut,
      },
      {
        // vtk.js's rendering profiles register its WebGPU back end beside the WebGL one;
        // Cornerstone renders with WebGL (or its canvas path) only.
        find: /^\.\.\/WebGPU\/Profiles\/(Geometry|Volume)\.js$/,
        replacement: leftOut,
      },
    ],
  },
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
