// A clickable column header that shows and flips the sort of its table.
import type { SortState } from "../lib/sort";

export function SortHeader<K extends string>({
  label,
  column,
  sort,
  onSort,
  numeric = false,
  testPrefix,
}: {
  label: string;
  column: K;
  sort: SortState<K>;
  onSort: (column: K) => void;
  numeric?: boolean;
  testPrefix?: string;
}) {
  const active = sort.key === column;
  return (
    <th
      className={`sortable ${numeric ? "num" : ""} ${active ? "sorted" : ""}`}
      aria-sort={active ? (sort.direction === "asc" ? "ascending" : "descending") : "none"}
    >
      <button type="button" onClick={() => onSort(column)} data-testid={testPrefix ? `${testPrefix}-sort-${column}` : undefined}>
        {label}
        <span className="sort-mark" aria-hidden="true">
          {active ? (sort.direction === "asc" ? "▲" : "▼") : "↕"}
        </span>
      </button>
    </th>
  );
}
