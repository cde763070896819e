// A study opened by its URL (a bookmark, a link from the hospital's system, a reload): its first
// requests start with the page, beside the session check and the viewer's 2.7 MB chunk, instead
// of one after another once that chunk has run (session → chunk → task → series → metadata).
// Then the image it opens on, rendered by the server, to show until Cornerstone draws it
// (viewer/preview.ts). Part of the main chunk: nothing of Cornerstone here.
import { prefetch } from '../api';
import { prefetchStudy } from '../viewer/dicomweb';
import { loadPreview, type Preview } from '../viewer/preview';

// By task: the opening slice's picture, taken once by the reading page.
const previews = new Map<string, Promise<Preview | null>>();

export function prefetchReading(taskId: string): void {
  void prefetch('/api/templates');
  const preview = prefetch<{ study_uid: string }>(`/api/tasks/${encodeURIComponent(taskId)}`)
    .then(async (task) => {
      const first = await prefetchStudy(task.study_uid);
      return first ? await loadPreview(task.study_uid, first.seriesUid, first.instances) : null;
    })
    .catch(() => null); // the page asks again, and says what went wrong
  previews.set(taskId, preview);
}

/** The picture of the opening slice of a task's study (null: none could be had), if the page
 * was opened by its URL; once. */
export function takePreview(taskId: string): Promise<Preview | null> | undefined {
  const preview = previews.get(taskId);
  previews.delete(taskId);
  return preview;
}
