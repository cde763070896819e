// The window presets, without Cornerstone: the reading page's toolbar is built before the
// viewer's chunk has run.

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
