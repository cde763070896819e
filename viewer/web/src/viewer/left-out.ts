// What vite.config.ts puts in place of the vtk.js readers of surface meshes (PLY, STL, OBJ/MTL,
// VTK XML poly data). Cornerstone core imports them at its top level for its mesh cache, and
// with them an XML builder, a DOM implementation and a YAML parser: about 0.4 MB of the viewer's
// chunk that every study opening compiled and ran, for meshes Yunying never loads (it shows
// stacks of images). A reader asked for anyway fails loudly, saying why. It also stands for
// vtk.js's WebGPU rendering profiles, which are imported only for what they register: there this
// module is merely run, and nothing is registered.
const leftOut = {
  newInstance(): never {
    throw new Error(
      "vtk.js's mesh readers are left out of Yunying's build (viewer/web/vite.config.ts): " +
        'take them out of the alias list there to load meshes',
    );
  },
};

export default leftOut;
