// The image viewer: one Cornerstone3D stack viewport over the project's own DICOMweb. Imported
// only by the reading page, so Cornerstone, vtk.js and the codecs stay out of the main chunk.
// What the first image needs (core, the image loader) is here; Cornerstone's tools are a chunk of
// their own (tools.ts), imported once the first image is drawn.
import {
  Enums,
  RenderingEngine,
  cache,
  eventTarget,
  getRenderingCapabilities,
  getShouldUseCPURendering,
  imageLoadPoolManager,
  imageLoader,
  init as initCore,
  metaData,
  setUseCPURendering,
  utilities,
  type StackViewport,
  type Types,
} from '@cornerstonejs/core';
import { init as initLoader, wadors } from '@cornerstonejs/dicom-image-loader';
import { afterPaint } from '../dom';
import { dicomJson, metadataPath, openingIndex, stackFrames, value, type DicomJson } from './dicomweb';
import { PRESETS } from './presets';

/** The primary mouse button's tools (tools.ts names them to Cornerstone). */
export type ToolKey = 'wl' | 'pan' | 'zoom' | 'length' | 'angle' | 'ellipse';

type ToolsModule = typeof import('./tools');
let toolsModule: Promise<ToolsModule> | null = null;

/** Cornerstone's tools (a separate chunk): loaded once, after a first image (or ahead of need). */
export function loadTools(): Promise<ToolsModule> {
  toolsModule ??= import('./tools');
  return toolsModule;
}

let initialised: Promise<void> | null = null;

/** Start Cornerstone (WebGL context, the decoder worker pool) ahead of need. */
export function initialise(): Promise<void> {
  initialised ??= (async () => {
    await initCore();
    // A software WebGL rasterizer (SwiftShader, llvmpipe: a PC without GPU drivers, a headless
    // browser) builds and draws a stack viewport slower than Cornerstone's canvas 2D path.
    // localStorage "yy.rendering" = "webgl" keeps WebGL there (the tests' way to the GPU path).
    if (getRenderingCapabilities().softwareRasterizer && localStorage.getItem('yy.rendering') !== 'webgl') setUseCPURendering(true);
    // The loader's XHRs are same-origin: the session cookie goes along; reads need no CSRF header.
    initLoader({ maxWebWorkers: Math.max(1, Math.min(2, navigator.hardwareConcurrency || 1)), beforeSend: frameHeaders } as never);
  })();
  return initialised;
}

// ---------------------------------------------------------------- renditions on a thin link
// On a slow line (a provincial expert on a township's link) a grey series' frames come as lossless
// HTJ2K renditions in resolution-first order (PS3.18 type "image/jphc"; the server makes them,
// docs/dicomweb.md): a third of the bytes, and Cornerstone's streaming loader draws each one
// coarse from its first bytes, then sharp. On a fast line native frames are quicker (nothing
// to decode), so the choice follows the line: measured on the page's answers (the last measure
// kept for 12 hours), or set in this browser (localStorage "yy.renditions": "htj2k" | "native").
export type Renditions = 'native' | 'htj2k';
/** Below this (Mbit/s, measured) a series is fetched as HTJ2K renditions. */
export const THIN_LINK_MBPS = 40;
const HTJ2K_ACCEPT = 'multipart/related; type="image/jphc"';
let measuredMbps: number | null = null;

/** What each series was fetched as (the loader's beforeSend, below, asks by it), and the line
 * speed measured (for the page and the tests). */
export const fetched: { renditions: Map<string, Renditions>; mbps: () => number | null } = {
  renditions: new Map(),
  mbps: () => measuredMbps,
};
// The viewport's load of a slice (GPU rendering; the CPU path loads whole frames): streamed, a
// first decode once a twelfth of the native size is in (24 kB at most: for a 512² CT slice of
// ~170 kB, its coarse 64² level), then every 64 kB at most every half second, then the whole.
function streamed(instance: DicomJson): object {
  // A rendition is about a third of the native frame; its coarse levels lie in the first twelfth.
  const native = (value<number>(instance, '00280010') ?? 512) * (value<number>(instance, '00280011') ?? 512) * 2;
  const initialChunkSize = Math.max(2_048, Math.min(24_576, Math.round(native / 12)));
  return { retrieveOptions: { default: { streaming: true, initialChunkSize, chunkSize: 65_536 } } };
}
const { imageRetrieveMetadataProvider } = utilities;

/** The Accept header of a frame request (the image loader's beforeSend, XHR and streamed fetch
 * alike: it names the image id or the URL), for a series fetched as HTJ2K renditions. */
function frameHeaders(_xhr: unknown, imageIdOrUrl: string): Record<string, string> {
  const series = /\/series\/([^/]+)\//.exec(imageIdOrUrl)?.[1];
  return series && fetched.renditions.get(series) === 'htj2k' ? { Accept: HTJ2K_ACCEPT } : {};
}

/** The line's speed in Mbit/s: the fastest of this page's answers that came over the network
 * and are big enough to time (the viewer's chunk on a first visit, a series' metadata, …); null
 * when none is. The best, not the median: an answer the server was slow to produce looks slow. */
function lineSpeed(): number | null {
  let best: number | null = null;
  for (const entry of performance.getEntriesByType('resource') as PerformanceResourceTiming[]) {
    if (entry.transferSize === 0 || entry.encodedBodySize < 16_384) continue; // from the cache, or too small
    const ms = entry.responseEnd - entry.responseStart;
    if (ms <= 0) continue;
    const mbps = (entry.encodedBodySize * 8) / ms / 1000;
    best = best === null ? mbps : Math.max(best, mbps);
  }
  return best;
}

const LINE_KEY = 'yy.line';
const LINE_KEPT_MS = 12 * 3600_000;

function renditionsFor(): Renditions {
  const chosen = localStorage.getItem('yy.renditions');
  if (chosen === 'htj2k' || chosen === 'native') return chosen;
  const now = lineSpeed();
  if (now !== null) {
    measuredMbps = now;
    localStorage.setItem(LINE_KEY, JSON.stringify({ mbps: now, at: Date.now() }));
  } else if (measuredMbps === null) {
    // Nothing to time on this page (all from the cache, or small): this browser's last measure.
    try {
      const kept = JSON.parse(localStorage.getItem(LINE_KEY) ?? 'null') as { mbps: number; at: number } | null;
      if (kept && Date.now() - kept.at < LINE_KEPT_MS) measuredMbps = kept.mbps;
    } catch {
      /* none kept */
    }
  }
  return measuredMbps !== null && measuredMbps < THIN_LINK_MBPS ? 'htj2k' : 'native';
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
  const middle = all[openingIndex(all.length)];
  // HTJ2K with GPU rendering: the viewport's own streaming load draws it coarse first; loading it
  // here would not.
  if (!middle || (fetched.renditions.get(seriesUid) === 'htj2k' && !getShouldUseCPURendering())) return;
  const { transferSyntaxUID } = (metaData.get(Enums.MetadataModules.TRANSFER_SYNTAX, middle) ?? {}) as { transferSyntaxUID?: string };
  // The options StackViewport loads with (getLoaderImageOptions): the cached image is the one it shows.
  void imageLoader
    .loadAndCacheImage(middle, { useRGBA: false, transferSyntaxUID } as never)
    .then(() => performance.mark('yy:first-decoded')) // fetched and decoded (bench/viewer.py's stages)
    .catch(() => undefined);
}

/** Image ids of a series in anatomical order, with each instance's metadata handed to the loader. */
async function seriesImageIds(studyUid: string, seriesUid: string): Promise<string[]> {
  const instances = await dicomJson(metadataPath(studyUid, seriesUid));
  // HTJ2K renditions are made of single-sample images of up to 16 bits.
  const grey = instances.every((i) => (value<number>(i, '00280002') ?? 1) === 1 && (value<number>(i, '00280100') ?? 16) <= 16);
  const renditions = grey ? renditionsFor() : 'native';
  fetched.renditions.set(seriesUid, renditions);
  const base = `${location.origin}/dicomweb/studies/${studyUid}/series/${seriesUid}`;
  const ids: string[] = [];
  for (const { instance, sop, frame } of stackFrames(instances)) {
    const imageId = `wadors:${base}/instances/${sop}/frames/${frame}`;
    wadors.metaDataManager.add(imageId, instance as never);
    if (renditions === 'htj2k') imageRetrieveMetadataProvider.add(imageId, streamed(instance));
    ids.push(imageId);
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
  /** The tools (mouse, wheel, measurements, cine) answer from now on. */
  toolsReady?(): void;
}

export class StackViewer {
  private engine: RenderingEngine;
  private viewportId = `yy-stack-${Math.random().toString(36).slice(2)}`;
  private primary: ToolKey = 'wl';
  private tools: InstanceType<ToolsModule['ViewerTools']> | null = null;
  private toolsStarted = false;
  private destroyed = false;
  private listeners: [EventTarget, string, EventListener][] = [];
  private imageIds: string[] = [];
  private started = performance.now();
  private firstImageSeen = false;
  private voiReported = false;
  private wanted = new Set<string>();
  private loadedIds = new Set<string>();
  /** The images drawn, in order, with their ImageQualityStatus (for the tests and the bench). */
  readonly drawn: [string, number][] = [];

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
    element.addEventListener('contextmenu', (event) => event.preventDefault());
    // Until the tools are loaded, the wheel scrolls here (the keyboard is the page's own).
    this.on(element, 'wheel', ((event: WheelEvent) => {
      if (this.tools || !this.imageIds.length) return;
      event.preventDefault();
      this.scroll(Math.sign(event.deltaY));
    }) as EventListener);

    this.on(element, Enums.Events.STACK_NEW_IMAGE, ((event: CustomEvent) => {
      this.events.slice(this.viewport.getCurrentImageIdIndex(), this.imageIds.length);
      // Each image drawn with its quality (a streamed HTJ2K slice: coarse, then whole).
      const image = event.detail?.image as { imageId?: string; imageQualityStatus?: number } | undefined;
      if (image?.imageId) this.drawn.push([image.imageId, image.imageQualityStatus ?? Enums.ImageQualityStatus.FULL_RESOLUTION]);
    }) as EventListener);
    this.on(element, Enums.Events.VOI_MODIFIED, () => this.reportVoi());
    this.on(element, Enums.Events.IMAGE_RENDERED, () => {
      // The first render of a preloaded frame can come before the viewport has its window
      // (no VOI_MODIFIED follows then): report it with the first render that has one.
      if (this.firstImageSeen && !this.voiReported) this.reportVoi();
      // Not a render of the empty viewport: the stack is set before its first frame has come
      // (the viewport then renders black, with no image).
      if (!this.firstImageSeen && this.viewport.getCurrentImageId() && this.viewport.getCornerstoneImage()) {
        this.firstImageSeen = true;
        performance.mark('yy:first-image');
        // Slice counter and window with the first image, not after setStack returns (with the
        // frame loaded ahead, the first render can come before it).
        this.events.slice(this.viewport.getCurrentImageIdIndex(), this.imageIds.length);
        this.reportVoi();
        this.events.firstImage(performance.now() - this.started);
        // The tools' chunk is parsed and run after this frame is painted, not before.
        window.setTimeout(() => void this.attachTools(), 0);
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
    const resize = new ResizeObserver(() => this.engine.resize(true, true));
    resize.observe(element);
    this.listeners.push([element, '__resize', (() => resize.disconnect()) as EventListener]);
  }

  static async create(element: HTMLDivElement, events: ViewerEvents): Promise<StackViewer> {
    await initialise();
    return new StackViewer(element, events);
  }

  /** Load Cornerstone's tools and put them on this viewport (once). */
  async attachTools(): Promise<void> {
    if (this.toolsStarted) return;
    this.toolsStarted = true;
    const { ViewerTools } = await loadTools();
    if (this.destroyed) return;
    this.tools = new ViewerTools(this.element, this.viewportId, this.engine.id, this.primary, () => this.reportMeasurements());
    performance.mark('yy:tools');
    this.events.toolsReady?.();
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
    const start = index ?? openingIndex(this.imageIds.length);
    await this.viewport.setStack(this.imageIds, Math.min(start, this.imageIds.length - 1));
    this.viewport.render();
    // The rest of the stack once this slice is painted (Cornerstone renders in the next animation
    // frame): queuing a few hundred requests holds the main thread, and the first image with it.
    afterPaint(() => this.destroyed || this.prefetch());
    this.events.slice(this.viewport.getCurrentImageIdIndex(), this.imageIds.length);
    this.reportVoi();
    // A series shown again (the first image was seen on an earlier one): tools stay as they are.
    if (this.firstImageSeen) void this.attachTools();
  }

  /** The rest of the stack into Cornerstone's cache, nearest the shown slice first, at the
   * request pool's prefetch priority (below the slices the reader scrolls to). Core only: the
   * whole stack does not wait for the tools' chunk. */
  private prefetch(): void {
    const from = this.viewport.getCurrentImageIdIndex();
    const order = this.imageIds.map((imageId, i) => ({ imageId, distance: Math.abs(i - from) })).sort((a, b) => a.distance - b.distance);
    for (const { imageId } of order) {
      if (cache.getImageLoadObject(imageId)) continue;
      imageLoadPoolManager.addRequest(
        () => imageLoader.loadAndCacheImage(imageId, { requestType: Enums.RequestType.Prefetch } as never).then(() => undefined, () => undefined),
        Enums.RequestType.Prefetch,
        { imageId },
      );
    }
  }

  setTool(key: ToolKey): void {
    this.primary = key;
    this.tools?.setTool(key);
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

  /** Cine on or off (nothing before the tools are loaded); whether it plays. */
  toggleCine(): boolean {
    return this.tools?.toggleCine() ?? false;
  }

  private stopCine(): void {
    this.tools?.stopCine();
  }

  clearMeasurements(): void {
    this.tools?.clearMeasurements();
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
    return this.tools?.handlesOnCanvas(this.viewport) ?? [];
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
    this.voiReported = true;
    const { windowWidth, windowCenter } = utilities.windowLevel.toWindowLevel(range.lower, range.upper);
    this.events.voi(windowWidth, windowCenter);
  }

  private reportMeasurements(): void {
    this.events.measurements(this.tools?.measurements() ?? []);
  }

  destroy(): void {
    this.destroyed = true;
    this.tools?.destroy();
    this.tools = null;
    for (const [target, kind, listener] of this.listeners) {
      if (kind === '__resize') (listener as unknown as () => void)();
      else target.removeEventListener(kind, listener);
    }
    this.engine.destroy();
  }
}
