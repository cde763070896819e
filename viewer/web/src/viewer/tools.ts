// Cornerstone3D's tools on a stack viewport: window/level, pan, zoom, wheel scrolling, the
// measurements and cine. A chunk of its own (about a third of the viewer's code), imported by
// stack.ts once a viewport's first image is drawn: its parse and evaluation no longer come before
// the first image (issue F). Nothing here loads images: the stack's prefetch is in stack.ts.
import { eventTarget, type StackViewport } from '@cornerstonejs/core';
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
  store,
  utilities as toolUtilities,
} from '@cornerstonejs/tools';
import type { Measurement, ToolKey } from './stack';

const NAMES: Record<ToolKey, string> = {
  wl: WindowLevelTool.toolName,
  pan: PanTool.toolName,
  zoom: ZoomTool.toolName,
  length: LengthTool.toolName,
  angle: AngleTool.toolName,
  ellipse: EllipticalROITool.toolName,
};

let started = false;

function start(): void {
  if (started) return;
  started = true;
  initTools();
  for (const tool of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, LengthTool, AngleTool, EllipticalROITool]) {
    addTool(tool);
  }
}

/** The tools of one viewport, attached after Cornerstone enabled its element. */
export class ViewerTools {
  private primary: ToolKey = 'wl';
  private cine = false;
  private readonly groupId = `yy-tools-${Math.random().toString(36).slice(2)}`;
  private readonly changed = () => this.report();

  constructor(
    private element: HTMLDivElement,
    viewportId: string,
    renderingEngineId: string,
    primary: ToolKey,
    private report: () => void,
  ) {
    start();
    // The tools listen for ELEMENT_ENABLED to put their mouse, wheel and keyboard handlers and
    // their SVG layer on a viewport; this one was enabled before they were loaded.
    if (!store.state.enabledElements.includes(element)) {
      store.addEnabledElement({ detail: { element, viewportId, renderingEngineId } } as never);
    }
    const group = ToolGroupManager.createToolGroup(this.groupId)!;
    for (const name of [...Object.values(NAMES), StackScrollTool.toolName]) group.addTool(name);
    group.addViewport(viewportId, renderingEngineId);
    group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Wheel }] });
    group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Auxiliary }] });
    group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Secondary }] });
    this.setTool(primary);
    for (const kind of [ToolEnums.Events.ANNOTATION_COMPLETED, ToolEnums.Events.ANNOTATION_MODIFIED, ToolEnums.Events.ANNOTATION_REMOVED]) {
      eventTarget.addEventListener(kind, this.changed);
    }
  }

  setTool(key: ToolKey): void {
    const group = ToolGroupManager.getToolGroup(this.groupId)!;
    group.setToolPassive(NAMES[this.primary]);
    if (this.primary === 'pan') group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Auxiliary }] });
    if (this.primary === 'zoom') group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Secondary }] });
    this.primary = key;
    const bindings = [{ mouseButton: ToolEnums.MouseBindings.Primary }];
    if (key === 'pan') bindings.push({ mouseButton: ToolEnums.MouseBindings.Auxiliary });
    if (key === 'zoom') bindings.push({ mouseButton: ToolEnums.MouseBindings.Secondary });
    group.setToolActive(NAMES[key], { bindings });
  }

  toggleCine(): boolean {
    if (this.cine) this.stopCine();
    else {
      toolUtilities.cine.playClip(this.element, { framesPerSecond: 12, loop: true });
      this.cine = true;
    }
    return this.cine;
  }

  stopCine(): void {
    if (this.cine) toolUtilities.cine.stopClip(this.element);
    this.cine = false;
  }

  clearMeasurements(): void {
    annotation.state.removeAllAnnotations();
  }

  /** The handles of each measurement in canvas (CSS pixel) coordinates. */
  handlesOnCanvas(viewport: StackViewport): [number, number][][] {
    return annotation.state
      .getAllAnnotations()
      .map((item) => (item.data.handles?.points ?? []).map((point) => viewport.worldToCanvas(point) as [number, number]));
  }

  measurements(): Measurement[] {
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
    return found;
  }

  destroy(): void {
    this.stopCine();
    for (const kind of [ToolEnums.Events.ANNOTATION_COMPLETED, ToolEnums.Events.ANNOTATION_MODIFIED, ToolEnums.Events.ANNOTATION_REMOVED]) {
      eventTarget.removeEventListener(kind, this.changed);
    }
    annotation.state.removeAllAnnotations();
    ToolGroupManager.destroyToolGroup(this.groupId);
  }
}
