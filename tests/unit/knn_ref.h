/*
 * knn_ref.h - the double-precision reference distance the unit tests
 * compare the k-NN code with (l2 = squared euclidean, ip = -dot, cosine =
 * 1 - cos: the engine's "smaller is better" form, vector.h).
 */
#ifndef VV_TEST_KNN_REF_H
#define VV_TEST_KNN_REF_H

#include <math.h>
#include <stddef.h>

#include "vecvault/vector.h"

static inline double knn_ref_dist(enum vv_metric m, const float *x, const float *q, size_t d)
{
	double s = 0, xx = 0, qq = 0;

	for (size_t i = 0; i < d; i++) {
		s += m == VV_METRIC_L2 ? ((double)x[i] - q[i]) * ((double)x[i] - q[i]) : (double)x[i] * q[i];
		xx += (double)x[i] * x[i];
		qq += (double)q[i] * q[i];
	}
	return m == VV_METRIC_L2 ? s : m == VV_METRIC_IP ? -s : 1 - s / sqrt(xx * qq);
}

#endif
