// A confusion matrix as a table heat map: counts [true][predicted], each cell tinted by its share of the row
// (how often a true class was predicted as each class), the diagonal in green, errors in red.

export function ConfusionMatrix({ matrix, classes, title, testId }: { matrix: number[][]; classes: string[]; title?: string; testId?: string }) {
  const names = classes.length === matrix.length ? classes : matrix.map((_, i) => `class ${i}`);
  const total = matrix.reduce((a, row) => a + row.reduce((x, y) => x + y, 0), 0);
  const correct = matrix.reduce((a, row, i) => a + (row[i] ?? 0), 0);
  return (
    <div className="confusion" data-testid={testId}>
      {title && (
        <div className="confusion-title">
          {title} <span className="muted small">accuracy {total ? ((correct / total) * 100).toFixed(1) : "—"}%</span>
        </div>
      )}
      <table className="heat">
        <thead>
          <tr>
            <th className="corner">true ↓ / predicted →</th>
            {names.map((n) => (
              <th key={n}>{n}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.map((row, i) => {
            const rowTotal = row.reduce((x, y) => x + y, 0);
            return (
              <tr key={i}>
                <th>{names[i]}</th>
                {row.map((count, j) => {
                  const share = rowTotal ? count / rowTotal : 0;
                  const hue = i === j ? "38, 166, 154" : "239, 83, 80";
                  return (
                    <td key={j} style={{ background: `rgba(${hue}, ${(0.08 + share * 0.8).toFixed(3)})` }} title={`${count} of ${rowTotal}`}>
                      <div className="heat-count">{count.toLocaleString("en-US")}</div>
                      <div className="heat-share">{(share * 100).toFixed(0)}%</div>
                    </td>
                  );
                })}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
