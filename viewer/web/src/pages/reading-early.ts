// A study opened by its URL (a bookmark, a link from the hospital's system, a reload): its first
// requests start with the page, beside the session check and the viewer's 3.7 MB chunk, instead
// of one after another once that chunk has run (session → chunk → task → series → metadata).
// Part of the main chunk: nothing of Cornerstone here.
import { prefetch } from '../api';
import { prefetchStudy } from '../viewer/dicomweb';

export function prefetchReading(taskId: string): void {
  void prefetch('/api/templates');
  void prefetch<{ study_uid: string }>(`/api/tasks/${encodeURIComponent(taskId)}`)
    .then((task) => prefetchStudy(task.study_uid))
    .catch(() => undefined); // the page asks again, and says what went wrong
}
