"""Connected components of a similarity graph, in Spark DataFrames: large-star / small-star.

The algorithm is Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014). Edges are kept
oriented (larger id, smaller id). One round is

* **large-star**: every node u links each neighbour v > u to m(u), the smallest of u and its neighbours;
* **small-star**: every node u links itself and each neighbour v < u to m'(u), the smallest of those.

Both keep connectivity, and the graph shrinks to stars around each component's smallest id in O(log² n)
rounds. It has converged when the edges form disjoint stars: no node is both a child and a parent, and no
child has two parents. Then each child's parent is its component's smallest id (every edge points down).

Why not GraphFrames: it is a JVM package (not installable here, no Maven registry), and its connected
components has been silently wrong with adaptive execution on (graphframes #453, #428) and on uncached inputs
(#159). Everything here is a deterministic function of the ids (min, joins, distinct), so partitioning and
adaptive execution cannot change the answer (tested with AQE on and off against a union-find). Each round's
edges are written to Parquet under ``scratch`` and read back, which cuts the lineage (rounds don't replay the
whole history) and keeps memory flat on giant components.

Small graphs take a shortcut. Each distributed round costs about nine Spark jobs (~1.2 s on two cores whatever
the graph's size), while scipy's compiled union-find labels millions of edges in a second. So when the edge count
is at most a limit (``dedup.minhash.components_local_max_edges``), the edges go to one Spark task (never to the
driver) that labels them with ``scipy.sparse.csgraph.connected_components`` (``label_components``; the dedup
stage's one-task path applies its keep rule in the same task); the answer is the same (component = the smallest
id), tested against the same union-find. Memory is bounded by the limit: ~100 bytes per edge, so 4 M edges take
~400 MB in that task. Bigger graphs use the rounds above, which have no such bound: that single-machine step is
where datatrove's clustering broke at scale (datatrove #106).
"""

from __future__ import annotations

import logging
import posixpath
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.spark import datasets

log = logging.getLogger("corpus")


class NotConverged(RuntimeError):
    pass


def _large_star(edges):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    nbr = edges.select(F.col("a").alias("u"), F.col("b").alias("v")).union(
        edges.select(F.col("b").alias("u"), F.col("a").alias("v"))
    )
    m = F.least(F.col("u"), F.min("v").over(Window.partitionBy("u")))
    return (
        nbr.withColumn("m", m)
        .where(F.col("v") > F.col("u"))
        .select(F.col("v").alias("a"), F.col("m").alias("b"))
        .distinct()
    )


def _small_star(edges):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # edges are (a > b): for node a, its smaller neighbours are the b's; m = the smallest of them (< a)
    m = edges.withColumn("m", F.min("b").over(Window.partitionBy("a")))
    linked = m.select(F.col("b").alias("a"), F.col("m").alias("b")).where(F.col("a") != F.col("b"))
    selves = m.select("a", F.col("m").alias("b"))
    return linked.union(selves).distinct()


def _is_star_forest(edges) -> bool:
    """True when no node has two parents and no node is both a child and a parent: one aggregation, one job."""
    from pyspark.sql import functions as F

    roles = edges.select("a", F.lit(1).alias("child"), F.lit(0).alias("parent")).union(
        edges.select(F.col("b").alias("a"), F.lit(0).alias("child"), F.lit(1).alias("parent"))
    )
    per_node = roles.groupBy("a").agg(F.sum("child").alias("parents"), F.max("parent").alias("is_parent"))
    return per_node.where((F.col("parents") > 1) | ((F.col("parents") > 0) & (F.col("is_parent") > 0))).isEmpty()


COMPONENTS = pa.schema([("id", pa.string()), ("component", pa.string())])
OUT_BATCH = 65_536


def label_components(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow function over *all* the edges (a, b) in one task → (id, component = smallest id of its
    component), ids in sorted order.

    The ids are sorted once and replaced by their rank, so the smallest rank in a component is its smallest id
    (the same byte order as Spark's string comparison)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as label

    ends = [(b.column("a"), b.column("b")) for b in batches if b.num_rows]
    if not ends:
        return
    a = pa.chunked_array([x for x, _ in ends], pa.string())
    b = pa.chunked_array([y for _, y in ends], pa.string())
    nodes = pc.unique(pa.chunked_array(a.chunks + b.chunks))
    nodes = nodes.take(pc.sort_indices(nodes))
    ia = pc.index_in(a, value_set=nodes).to_numpy()
    ib = pc.index_in(b, value_set=nodes).to_numpy()
    n = len(nodes)
    graph = coo_matrix((np.ones(len(ia), dtype=np.int8), (ia, ib)), shape=(n, n))
    _, labels = label(graph, directed=False)
    # ranks ascend, so each label's first occurrence is its smallest rank: the component's smallest id
    _, first = np.unique(labels, return_index=True)
    component = nodes.take(pa.array(first[labels]))
    for k in range(0, n, OUT_BATCH):
        yield pa.RecordBatch.from_arrays([nodes.slice(k, OUT_BATCH), component.slice(k, OUT_BATCH)], schema=COMPONENTS)


def connected_components(
    spark, edges, scratch: str, max_iterations: int = 100, n_edges: int | None = None, local_max_edges: int = 0
):
    """``edges`` (columns a, b: string ids) → DataFrame (id, component) for every node that has an edge, with
    component = the smallest id in its component. Returns (DataFrame, rounds); rounds is 0 when the graph
    (``n_edges`` known and at most ``local_max_edges``) was labelled in one task."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    if n_edges is not None and n_edges <= local_max_edges:
        spark.sparkContext.setJobDescription(f"forge dedup: connected components of {n_edges:,} edges in one task")
        path = posixpath.join(scratch, "labelled")
        datasets.write(
            edges.select("a", "b").coalesce(1).mapInArrow(label_components, from_arrow_schema(COMPONENTS)),
            path,
            overwrite=True,
        )
        return datasets.read(spark, path, schema=from_arrow_schema(COMPONENTS)), 0

    def checkpoint(df, k: int):
        path = posixpath.join(scratch, f"round-{k:03d}")
        datasets.write(df, path, overwrite=True)
        return datasets.read(spark, path, schema=df.schema)

    current = checkpoint(
        edges.select(F.greatest("a", "b").alias("a"), F.least("a", "b").alias("b"))
        .where(F.col("a") != F.col("b"))
        .distinct(),
        0,
    )
    for k in range(1, max_iterations + 1):
        if _is_star_forest(current):
            log.info("connected components: converged after %d rounds", k - 1)
            return current.select(F.col("a").alias("id"), F.col("b").alias("component")).union(
                current.select(F.col("b").alias("id"), F.col("b").alias("component")).distinct()
            ), k - 1
        spark.sparkContext.setJobDescription(f"forge dedup: connected components, round {k}")
        current = checkpoint(_small_star(_large_star(current)), k)
    raise NotConverged(
        f"connected components did not converge in {max_iterations} rounds (raise dedup.minhash.max_iterations)"
    )
