// The image viewer: one Cornerstone3D stack viewport over the project's own DICOMweb. Imported
// only by the reading page, so Cornerstone, vtk.js and the codecs stay out of the main chunk.
import {
  Enums,
  RenderingEngine,
  eventTarget,
  getRenderingCapabilities,
  imageLoader,
  init as initCore,
  metaData,
  setUseCPURendering,
  utilities,
  type StackViewport,
  type Types,
} from '@cornerstonejs/core';
import {
  AngleTool,
  EllipticalROITool,
  Enums as ToolEnums,
  LengthTool,
  PanTool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  addTool,
  annotation,
  init as initTools,
  utilities as toolUtilities,
} from '@cornerstonejs/tools';
import { init as initLoader, wadors } from '@cornerstonejs/dicom-image-loader';
import { dicomJson, metadataPath, value } from './dicomweb';

/** Window width / level (HU) of the presets radiologists use on CT. */
export const PRESETS: Record<string, [number, number]> = {
  brain: [80, 40],
  subdural: [200, 75],
  stroke: [40, 40],
  lung: [1500, -600],
  mediastinum: [350, 50],
  abdomen: [400, 50],
  liver: [150, 30],
  bone: [1800, 400],
};

export const TOOLS = {
  wl: WindowLevelTool.toolName,
  pan: PanTool.toolName,
  zoom: ZoomTool.toolName,
  length: LengthTool.toolName,
  angle: AngleTool.toolName,
  ellipse: EllipticalROITool.toolName,
} as const;
export type ToolKey = keyof typeof TOOLS;

let initialised: Promise<void> | null = null;

/** Start Cornerstone (WebGL context, tools, the decoder worker pool) ahead of need. */
export function initialise(): Promise<void> {
  initialised ??= (async () => {
    await initCore();
    // A software WebGL rasterizer (SwiftShader, llvmpipe: a PC without GPU drivers, a headless
    // browser) builds and draws a stack viewport slower than Cornerstone's canvas 2D path.
    if (getRenderingCapabilities().softwareRasterizer) setUseCPURendering(true);
    initTools();
    // The loader's XHRs are same-origin: the session cookie goes along; reads need no CSRF header.
    initLoader({ maxWebWorkers: Math.max(1, Math.min(2, navigator.hardwareConcurrency || 1)) });
    for (const tool of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, LengthTool, AngleTool, EllipticalROITool]) {
      addTool(tool);
    }
  })();
  return initialised;
}

// Image ids a study's first series was opened with ahead of its viewport (preloadFirstImage),
// taken once by show(): a later show() of the series asks the server again.
const early = new Map<string, Promise<string[]>>();

/** Start loading the image a series opens on (its middle slice), for a viewport still to be
 * built; resolves once its request is sent (Cornerstone started, the series' metadata read). */
export async function startFirstImage(studyUid: string, seriesUid: string): Promise<void> {
  const ids = seriesImageIds(studyUid, seriesUid);
  early.set(seriesUid, ids);
  await initialise();
  const all = await ids;
  const middle = all[Math.floor(all.length / 2)];
  if (!middle) return;
  const { transferSyntaxUID } = (metaData.get(Enums.MetadataModules.TRANSFER_SYNTAX, middle) ?? {}) as { transferSyntaxUID?: string };
  // The options StackViewport loads with (getLoaderImageOptions): the cached image is the one it shows.
  void imageLoader.loadAndCacheImage(middle, { useRGBA: false, transferSyntaxUID } as never).catch(() => undefined);
}

/** Image ids of a series in anatomical order, with each instance's metadata handed to the loader. */
async function seriesImageIds(studyUid: string, seriesUid: string): Promise<string[]> {
  const instances = await dicomJson(metadataPath(studyUid, seriesUid));
  const base = `${location.origin}/dicomweb/studies/${studyUid}/series/${seriesUid}`;
  const ordered = instances
    .filter((instance) => instance['7FE00010'] !== undefined || value(instance, '00280010') !== undefined)
    .map((instance) => {
      const position = instance['00200032']?.Value as number[] | undefined;
      const orientation = instance['00200037']?.Value as number[] | undefined;
      let along = value<number>(instance, '00200013') ?? 0;
      if (position && orientation && orientation.length === 6) {
        const [a, b, c, d, e, f] = orientation;
        const normal = [b * f - c * e, c * d - a * f, a * e - b * d];
        along = position[0] * normal[0] + position[1] * normal[1] + position[2] * normal[2];
      }
      return { instance, along };
    })
    .sort((x, y) => x.along - y.along);
  const ids: string[] = [];
  for (const { instance } of ordered) {
    const frames = Number(value<number | string>(instance, '00280008') ?? 1) || 1;
    const sop = value<string>(instance, '00080018')!;
    for (let frame = 1; frame <= frames; frame++) {
      const imageId = `wadors:${base}/instances/${sop}/frames/${frame}`;
      wadors.metaDataManager.add(imageId, instance as never);
      ids.push(imageId);
    }
  }
  return ids;
}

export interface Measurement {
  kind: 'length' | 'angle' | 'ellipse';
  value: number;
  unit: string;
  sd?: number;
  min?: number;
  max?: number;
  area?: number;
  areaUnit?: string;
}

export interface ViewerEvents {
  slice(index: number, total: number): void;
  voi(width: number, centre: number): void;
  measurements(found: Measurement[]): void;
  firstImage(ms: number): void;
  loaded(count: number, total: number): void;
}

export class StackViewer {
  private engine: RenderingEngine;
  private viewportId = `yy-stack-${Math.random().toString(36).slice(2)}`;
  private toolGroupId = `yy-tools-${Math.random().toString(36).slice(2)}`;
  private primary: ToolKey = 'wl';
  private cine = false;
  private listeners: [EventTarget, string, EventListener][] = [];
  private imageIds: string[] = [];
  private started = performance.now();
  private firstImageSeen = false;
  private wanted = new Set<string>();
  private loadedIds = new Set<string>();

  private constructor(
    private element: HTMLDivElement,
    private events: ViewerEvents,
  ) {
    this.engine = new RenderingEngine(`yy-engine-${Math.random().toString(36).slice(2)}`);
    this.engine.enableElement({
      viewportId: this.viewportId,
      type: Enums.ViewportType.STACK,
      element,
      defaultOptions: { background: [0, 0, 0] as Types.Point3 },
    });
    const group = ToolGroupManager.createToolGroup(this.toolGroupId)!;
    for (const name of [...Object.values(TOOLS), StackScrollTool.toolName]) group.addTool(name);
    group.addViewport(this.viewportId, this.engine.id);
    group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Wheel }] });
    group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Auxiliary }] });
    group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Secondary }] });
    this.setTool('wl');
    element.addEventListener('contextmenu', (event) => event.preventDefault());

    this.on(element, Enums.Events.STACK_NEW_IMAGE, () => this.events.slice(this.viewport.getCurrentImageIdIndex(), this.imageIds.length));
    this.on(element, Enums.Events.VOI_MODIFIED, () => this.reportVoi());
    this.on(element, Enums.Events.IMAGE_RENDERED, () => {
      if (!this.firstImageSeen && this.viewport.getCurrentImageId()) {
        this.firstImageSeen = true;
        performance.mark('yy:first-image');
        // Slice counter and window with the first image, not after setStack returns (with the
        // frame loaded ahead, the first render can come before it).
        this.events.slice(this.viewport.getCurrentImageIdIndex(), this.imageIds.length);
        this.reportVoi();
        this.events.firstImage(performance.now() - this.started);
      }
    });
    // How much of the stack is in the cache (the prefetch fills it behind the shown slice).
    this.on(eventTarget, Enums.Events.IMAGE_LOADED, ((event: CustomEvent) => {
      const imageId: string | undefined = event.detail?.image?.imageId;
      if (imageId && this.wanted.has(imageId) && !this.loadedIds.has(imageId)) {
        this.loadedIds.add(imageId);
        this.events.loaded(this.loadedIds.size, this.imageIds.length);
      }
    }) as EventListener);
    for (const kind of [ToolEnums.Events.ANNOTATION_COMPLETED, ToolEnums.Events.ANNOTATION_MODIFIED, ToolEnums.Events.ANNOTATION_REMOVED]) {
      this.on(eventTarget, kind, () => this.reportMeasurements());
    }
    const resize = new ResizeObserver(() => this.engine.resize(true, true));
    resize.observe(element);
    this.listeners.push([element, '__resize', (() => resize.disconnect()) as EventListener]);
  }

  static async create(element: HTMLDivElement, events: ViewerEvents): Promise<StackViewer> {
    await initialise();
    return new StackViewer(element, events);
  }

  private on(target: EventTarget, kind: string, listener: EventListener): void {
    target.addEventListener(kind, listener);
    this.listeners.push([target, kind, listener]);
  }

  get viewport(): StackViewport {
    return this.engine.getViewport(this.viewportId) as StackViewport;
  }

  get total(): number {
    return this.imageIds.length;
  }

  /** Show a series, starting at ``index`` (the middle by default); the rest prefetches. */
  async show(studyUid: string, seriesUid: string, index?: number): Promise<void> {
    this.stopCine();
    const preloaded = early.get(seriesUid);
    early.delete(seriesUid);
    this.imageIds = await (preloaded ?? seriesImageIds(studyUid, seriesUid));
    performance.mark('yy:metadata');
    if (!this.imageIds.length) throw new Error('no images in this series');
    this.wanted = new Set(this.imageIds);
    this.loadedIds = new Set();
    const start = index ?? Math.floor(this.imageIds.length / 2);
    await this.viewport.setStack(this.imageIds, Math.min(start, this.imageIds.length - 1));
    this.viewport.render();
    toolUtilities.stackPrefetch.enable(this.element);
    this.events.slice(this.viewport.getCurrentImageIdIndex(), this.imageIds.length);
    this.reportVoi();
  }

  setTool(key: ToolKey): void {
    const group = ToolGroupManager.getToolGroup(this.toolGroupId)!;
    group.setToolPassive(TOOLS[this.primary]);
    if (this.primary === 'pan') group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Auxiliary }] });
    if (this.primary === 'zoom') group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Secondary }] });
    this.primary = key;
    const bindings = [{ mouseButton: ToolEnums.MouseBindings.Primary }];
    if (key === 'pan') bindings.push({ mouseButton: ToolEnums.MouseBindings.Auxiliary });
    if (key === 'zoom') bindings.push({ mouseButton: ToolEnums.MouseBindings.Secondary });
    group.setToolActive(TOOLS[key], { bindings });
  }

  get tool(): ToolKey {
    return this.primary;
  }

  preset(name: string): void {
    const [width, centre] = PRESETS[name];
    this.viewport.setProperties({ voiRange: utilities.windowLevel.toLowHighRange(width, centre) });
    this.viewport.render();
    this.reportVoi();
  }

  scroll(delta: number): void {
    utilities.scroll(this.viewport, { delta });
  }

  /** Where in its stack the shown slice is, 0 (first) to 1 (last). */
  get position(): number {
    return this.imageIds.length > 1 ? this.viewport.getCurrentImageIdIndex() / (this.imageIds.length - 1) : 0;
  }

  /** Show the slice at the same relative place as ``position`` (synchronized scrolling). */
  async follow(position: number): Promise<void> {
    const index = Math.round(position * (this.imageIds.length - 1));
    if (this.imageIds.length && index !== this.viewport.getCurrentImageIdIndex()) await this.jumpTo(index);
  }

  async jumpTo(index: number): Promise<void> {
    await this.viewport.setImageIdIndex(Math.max(0, Math.min(index, this.imageIds.length - 1)));
  }

  /** The slice of an instance (an AI finding's location), or -1. */
  indexOf(sopInstanceUid: string, frame = 1): number {
    return this.imageIds.findIndex((id) => id.includes(`/instances/${sopInstanceUid}/frames/${frame}`));
  }

  reset(): void {
    this.viewport.resetCamera();
    this.viewport.resetProperties();
    this.viewport.render();
    this.reportVoi();
  }

  toggleCine(): boolean {
    if (this.cine) this.stopCine();
    else {
      toolUtilities.cine.playClip(this.element, { framesPerSecond: 12, loop: true });
      this.cine = true;
    }
    return this.cine;
  }

  private stopCine(): void {
    if (this.cine) toolUtilities.cine.stopClip(this.element);
    this.cine = false;
  }

  clearMeasurements(): void {
    annotation.state.removeAllAnnotations();
    this.viewport.render();
    this.reportMeasurements();
  }

  /** Millimetres per CSS pixel of the canvas at the current zoom (tests check lengths with it). */
  mmPerCanvasPixel(): number {
    const camera = this.viewport.getCamera();
    return (2 * (camera.parallelScale ?? 0)) / this.element.clientHeight;
  }

  /** The handles of each measurement in canvas (CSS pixel) coordinates. */
  handlesOnCanvas(): [number, number][][] {
    return annotation.state
      .getAllAnnotations()
      .map((item) => (item.data.handles?.points ?? []).map((point) => this.viewport.worldToCanvas(point) as [number, number]));
  }

  /** Where an image pixel (column, row; 0 at the first pixel's outer corner) of the shown slice
   * is on the canvas, in CSS pixels (tests find the AI's region on screen with it). */
  imageToCanvas(column: number, row: number): [number, number] {
    const world = utilities.imageToWorldCoords(this.viewport.getCurrentImageId(), [column, row]) as Types.Point3;
    return this.viewport.worldToCanvas(world) as [number, number];
  }

  private reportVoi(): void {
    const range = this.viewport.getProperties().voiRange;
    if (!range) return;
    const { windowWidth, windowCenter } = utilities.windowLevel.toWindowLevel(range.lower, range.upper);
    this.events.voi(windowWidth, windowCenter);
  }

  private reportMeasurements(): void {
    const found: Measurement[] = [];
    for (const item of annotation.state.getAllAnnotations()) {
      const stats = Object.values(item.data.cachedStats ?? {})[0] as Record<string, number | string> | undefined;
      const tool = item.metadata?.toolName;
      if (!stats) continue;
      if (tool === LengthTool.toolName && typeof stats.length === 'number') {
        found.push({ kind: 'length', value: stats.length, unit: String(stats.unit ?? 'mm') });
      } else if (tool === AngleTool.toolName && typeof stats.angle === 'number') {
        found.push({ kind: 'angle', value: stats.angle, unit: '°' });
      } else if (tool === EllipticalROITool.toolName && typeof stats.mean === 'number') {
        found.push({
          kind: 'ellipse',
          value: stats.mean,
          unit: String(stats.modalityUnit ?? ''),
          sd: Number(stats.stdDev),
          min: Number(stats.min),
          max: Number(stats.max),
          area: Number(stats.area),
          areaUnit: String(stats.areaUnit ?? ''),
        });
      }
    }
    this.events.measurements(found);
  }

  destroy(): void {
    this.stopCine();
    toolUtilities.stackPrefetch.disable(this.element);
    for (const [target, kind, listener] of this.listeners) {
      if (kind === '__resize') (listener as unknown as () => void)();
      else target.removeEventListener(kind, listener);
    }
    annotation.state.removeAllAnnotations();
    ToolGroupManager.destroyToolGroup(this.toolGroupId);
    this.engine.destroy();
  }
}

