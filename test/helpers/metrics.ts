/**
 * One series a gateway exports on `/metrics` (`name`, or `name{labels}` exactly as it prints
 * them), read with a publish key; 0 while the series has no line yet.
 */
export async function metricValue(url: string, series: string, key: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${key}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}
