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
"""

from __future__ import annotations

import logging
import posixpath

from corpus.spark import datasets

log = logging.getLogger("corpus")


class NotConverged(RuntimeError):
    pass


def _large_star(edges):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    nbr = edges.select(F.col("a").alias("u"), F.col("b").alias("v")).union(
        edges.select(F.col("b").alias("u"), F.col("a").alias("v")))
    m = F.least(F.col("u"), F.min("v").over(Window.partitionBy("u")))
    return (nbr.withColumn("m", m).where(F.col("v") > F.col("u"))
            .select(F.col("v").alias("a"), F.col("m").alias("b")).distinct())


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
        edges.select(F.col("b").alias("a"), F.lit(0).alias("child"), F.lit(1).alias("parent")))
    per_node = roles.groupBy("a").agg(F.sum("child").alias("parents"), F.max("parent").alias("is_parent"))
    return per_node.where((F.col("parents") > 1) | ((F.col("parents") > 0) & (F.col("is_parent") > 0))).isEmpty()


def connected_components(spark, edges, scratch: str, max_iterations: int = 100):
    """``edges`` (columns a, b: string ids) → DataFrame (id, component) for every node that has an edge, with
    component = the smallest id in its component. Returns (DataFrame, rounds)."""
    from pyspark.sql import functions as F

    def checkpoint(df, k: int):
        path = posixpath.join(scratch, f"round-{k:03d}")
        datasets.write(df, path, overwrite=True)
        return datasets.read(spark, path)

    current = checkpoint(edges.select(F.greatest("a", "b").alias("a"), F.least("a", "b").alias("b"))
                         .where(F.col("a") != F.col("b")).distinct(), 0)
    for k in range(1, max_iterations + 1):
        if _is_star_forest(current):
            log.info("connected components: converged after %d rounds", k - 1)
            return current.select(F.col("a").alias("id"), F.col("b").alias("component")).union(
                current.select(F.col("b").alias("id"), F.col("b").alias("component")).distinct()), k - 1
        spark.sparkContext.setJobDescription(f"dedup: connected components, round {k}")
        current = checkpoint(_small_star(_large_star(current)), k)
    raise NotConverged(f"connected components did not converge in {max_iterations} rounds "
                       "(raise dedup.minhash.max_iterations)")
