/** A live score of about 400 bytes as JSON, two or three fields changing per update (`minute` is unique): the delta tests' payload. */
export function score(i: number): object {
  return {
    match: 'match-42',
    competition: 'Premier League',
    home: { team: 'Northfield Rovers', short: 'NFR', goals: Math.floor(i / 7), cards: { yellow: i % 3, red: 0 } },
    away: { team: 'Southgate Albion', short: 'SGA', goals: Math.floor(i / 11), cards: { yellow: 1, red: 0 } },
    minute: i,
    period: i < 45 ? 'first-half' : 'second-half',
    possession: { home: 50 + (i % 9), away: 50 - (i % 9) },
    venue: 'Riverside Stadium, North Stand entrance C',
    referee: 'A. Example',
    lastEvent: i % 5 === 0 ? `corner ${i}` : `pass ${i}`,
    updatedBy: 'feed-3',
  };
}

/** A payload a client received, with its id. */
export interface Recorded {
  data: unknown;
  id: string;
}
