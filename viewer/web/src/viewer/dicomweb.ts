// The project's DICOMweb as the viewer reads it, without Cornerstone: the main chunk uses it to
// start a study's first requests while the viewer's chunk is still loading (pages/reading-early.ts).
import { prefetch, takePrefetched } from '../api';

export type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;

export interface SeriesInfo {
  seriesUid: string;
  number: number | null;
  modality: string;
  description: string;
  instances: number;
}

/** Structured reports (the AI's SR), presentation states and key-object notes have no pixels. */
export const NO_PIXELS = new Set(['SR', 'PR', 'KO', 'DOC', 'REG']);

const DICOM_JSON = 'application/dicom+json';

export function value<T>(element: DicomJson, tag: string): T | undefined {
  return element[tag]?.Value?.[0] as T | undefined;
}

/** A QIDO or metadata answer (an answer fetched early for the same path, if there is one). */
export async function dicomJson(path: string): Promise<DicomJson[]> {
  const early = takePrefetched<DicomJson[]>(path);
  if (early) {
    try {
      return await early;
    } catch {
      /* asked again below, with its error reported */
    }
  }
  const response = await fetch(path, { headers: { Accept: DICOM_JSON }, credentials: 'same-origin' });
  if (!response.ok) throw new Error(`${response.status} ${path}`);
  if (response.status === 204) return [];
  return (await response.json()) as DicomJson[];
}

/** One image of a stack: an instance's frame (1-based). */
export interface StackFrame {
  instance: DicomJson;
  sop: string;
  frame: number;
}

/** The images of a series in anatomical order (along the slices' normal; by Instance Number
 * where there is no position), each frame of a multi-frame instance in turn. Instances without
 * pixels (none here: the series is one with images) are left out. */
export function stackFrames(instances: DicomJson[]): StackFrame[] {
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
  const frames: StackFrame[] = [];
  for (const { instance } of ordered) {
    const count = Number(value<number | string>(instance, '00280008') ?? 1) || 1;
    const sop = value<string>(instance, '00080018')!;
    for (let frame = 1; frame <= count; frame++) frames.push({ instance, sop, frame });
  }
  return frames;
}

/** The image a stack of ``count`` opens on: its middle one (the server's picture of it and the
 * viewer's first image are the same slice). */
export function openingIndex(count: number): number {
  return Math.floor(count / 2);
}

export const seriesPath = (studyUid: string) => `/dicomweb/studies/${studyUid}/series`;
export const metadataPath = (studyUid: string, seriesUid: string) => `/dicomweb/studies/${studyUid}/series/${seriesUid}/metadata`;

function seriesInfo(rows: DicomJson[]): SeriesInfo[] {
  return rows
    .map((row) => ({
      seriesUid: value<string>(row, '0020000E')!,
      number: value<number>(row, '00200011') ?? null,
      modality: value<string>(row, '00080060') ?? '',
      description: value<string>(row, '0008103E') ?? '',
      instances: value<number>(row, '00201209') ?? 0,
    }))
    .sort((a, b) => (a.number ?? 0) - (b.number ?? 0));
}

export async function listSeries(studyUid: string): Promise<SeriesInfo[]> {
  return seriesInfo(await dicomJson(seriesPath(studyUid)));
}

/** The series a study opens on: the first with images. */
export function firstSeries(series: SeriesInfo[]): SeriesInfo | undefined {
  const withPixels = series.filter((one) => !NO_PIXELS.has(one.modality));
  return withPixels.find((one) => one.instances > 0) ?? withPixels[0];
}

/** Start fetching a study's series list and its first series' metadata now (taken by
 * ``listSeries`` and the viewer when they ask for the same paths); resolves to that metadata. */
export async function prefetchStudy(studyUid: string): Promise<{ seriesUid: string; instances: DicomJson[] } | null> {
  const rows = await prefetch<DicomJson[]>(seriesPath(studyUid), DICOM_JSON);
  const first = firstSeries(seriesInfo(rows));
  if (!first) return null;
  return { seriesUid: first.seriesUid, instances: await prefetch<DicomJson[]>(metadataPath(studyUid, first.seriesUid), DICOM_JSON) };
}
