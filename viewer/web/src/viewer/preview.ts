// The slice a study opens on, drawn by the server, on screen before Cornerstone is.
//
// A study opened by its URL needs the viewer's chunk (2.7 MB: Cornerstone core, vtk.js, the image
// loader) parsed and run before Cornerstone draws anything, about 0.2 s of the main thread even
// from the browser's cache, and on a township's line the chunk itself takes a second or more to
// arrive. The slice Cornerstone will open on is known as soon as the series' metadata is in, so
// the main chunk asks the server for it rendered (WADO-RS `rendered`: PNG, lossless at 8 bits,
// at the image's own window — what Cornerstone starts at) and the reading page shows it where the
// viewport is, fitted as Cornerstone fits it, until Cornerstone's first image replaces it. It is
// a picture: no tools, no scrolling; the reader sees the study while the viewer gets ready.
// Nothing of Cornerstone here (this is part of the main chunk).
import { afterPaint } from '../dom';
import { openingIndex, stackFrames, value, type DicomJson } from './dicomweb';

export interface Preview {
  image: HTMLImageElement;
  /** Width over height of what the image shows (columns × column spacing over rows × row spacing). */
  aspect: number;
}

/** The URL of the image a series opens on (its middle image, as the viewer opens it), rendered. */
export function openingImage(studyUid: string, seriesUid: string, instances: DicomJson[]): { url: string; aspect: number } | null {
  const frames = stackFrames(instances);
  const opening = frames[openingIndex(frames.length)];
  if (!opening) return null;
  const { instance, sop, frame } = opening;
  const rows = value<number>(instance, '00280010') ?? 0;
  const columns = value<number>(instance, '00280011') ?? 0;
  if (!rows || !columns) return null;
  const spacing = instance['00280030']?.Value as number[] | undefined; // row spacing, column spacing
  const [rowMm, columnMm] = spacing && spacing.length === 2 && spacing[0] > 0 && spacing[1] > 0 ? spacing : [1, 1];
  return {
    url: `/dicomweb/studies/${studyUid}/series/${seriesUid}/instances/${sop}/frames/${frame}/rendered?accept=image/png`,
    aspect: (columns * columnMm) / (rows * rowMm),
  };
}

/** Fetch and decode the opening image of a series; null when there is none to draw. */
export async function loadPreview(studyUid: string, seriesUid: string, instances: DicomJson[]): Promise<Preview | null> {
  const opening = openingImage(studyUid, seriesUid, instances);
  if (!opening) return null;
  const image = new Image();
  image.alt = '';
  image.decoding = 'async';
  image.src = opening.url;
  try {
    await image.decode();
  } catch {
    return null; // not drawable, or refused: Cornerstone's image is the first one then
  }
  return { image, aspect: opening.aspect };
}

export interface ShownPreview {
  /** Resolves once the preview has been painted. */
  painted: Promise<void>;
  remove(): void;
}

/** Put a preview over ``viewport`` (a positioned element), whole and centred at the largest size
 * that fits — where and how big Cornerstone draws the image when it opens — and keep it so
 * while the viewport changes size. */
export function showPreview(viewport: HTMLElement, preview: Preview): ShownPreview {
  const { image, aspect } = preview;
  const place = () => {
    const width = Math.min(viewport.clientWidth, viewport.clientHeight * aspect);
    const height = width / aspect;
    Object.assign(image.style, {
      left: `${(viewport.clientWidth - width) / 2}px`,
      top: `${(viewport.clientHeight - height) / 2}px`,
      width: `${width}px`,
      height: `${height}px`,
    });
  };
  image.className = 'preview';
  image.setAttribute('aria-hidden', 'true');
  place();
  viewport.append(image);
  const resized = new ResizeObserver(place);
  resized.observe(viewport);
  const painted = new Promise<void>((resolve) =>
    afterPaint((onScreen) => {
      if (onScreen && image.isConnected) performance.mark('yy:preview');
      resolve();
    }),
  );
  return {
    painted,
    remove: () => {
      resized.disconnect();
      image.remove();
    },
  };
}
