// SPDX-License-Identifier: MIT
// The kernels of every operation of ace::Cuda: ACE_CUDA_KERNELS_OF(T) instantiates DeviceExec::run for each index
// functor of include/ace/backend/cuda/kernels.hpp that KernelOps launches with scalar T (a missing one is a link
// error naming the functor). kernels_float.cu and kernels_double.cu expand it, so the two compile in parallel.
#pragma once

#include "ace/backend/cuda/egnn_kernels.hpp"
#include "ace/backend/cuda/o3_kernels.hpp"
#include "launch.cuh"

#define ACE_CUDA_KERNELS_OF(T)                                                                                        \
  ACE_CUDA_KERNEL(Fill<T>)                                                                                            \
  ACE_CUDA_KERNEL(Axpy<T>)                                                                                            \
  ACE_CUDA_KERNEL(Scale<T>)                                                                                           \
  ACE_CUDA_KERNEL(Add<T>)                                                                                             \
  ACE_CUDA_KERNEL(ReducePartials<T>)                                                                                  \
  ACE_CUDA_KERNEL(ReduceFinal<T>)                                                                                     \
  ACE_CUDA_KERNEL(ScaleToNorm<T>)                                                                                     \
  ACE_CUDA_KERNEL(AddRow<T>)                                                                                          \
  ACE_CUDA_KERNEL(SumRows<T>)                                                                                         \
  ACE_CUDA_KERNEL(SumRowBlocks<T>)                                                                                    \
  ACE_CUDA_KERNEL(RowDot<T>)                                                                                          \
  ACE_CUDA_KERNEL(Map<ReLUOp, T>)                                                                                     \
  ACE_CUDA_KERNEL(Map<SigmoidOp, T>)                                                                                  \
  ACE_CUDA_KERNEL(Map<SiLUOp, T>)                                                                                     \
  ACE_CUDA_KERNEL(Map<TanhOp, T>)                                                                                     \
  ACE_CUDA_KERNEL(Map<GELUOp, T>)                                                                                     \
  ACE_CUDA_KERNEL(MapBackward<ReLUOp, T>)                                                                             \
  ACE_CUDA_KERNEL(MapBackward<SigmoidOp, T>)                                                                          \
  ACE_CUDA_KERNEL(MapBackward<SiLUOp, T>)                                                                             \
  ACE_CUDA_KERNEL(MapBackward<TanhOp, T>)                                                                             \
  ACE_CUDA_KERNEL(MapBackward<GELUOp, T>)                                                                             \
  ACE_CUDA_KERNEL(SparseMap<T>)                                                                                       \
  ACE_CUDA_KERNEL(SparseMapAdjoint<T>)                                                                                \
  ACE_CUDA_KERNEL(GatherRows<T>)                                                                                      \
  ACE_CUDA_KERNEL(ScatterAddRows<T>)                                                                                  \
  ACE_CUDA_KERNEL(SegmentReduce<T>)                                                                                   \
  ACE_CUDA_KERNEL(SegmentReduceBackward<T>)                                                                           \
  ACE_CUDA_KERNEL(PairTranspose<T>)                                                                                   \
  ACE_CUDA_KERNEL(PairPool<T>)                                                                                        \
  ACE_CUDA_KERNEL(PairBroadcast<T>)                                                                                   \
  ACE_CUDA_KERNEL(NormNonlinearity<ReLUOp, T>)                                                                        \
  ACE_CUDA_KERNEL(NormNonlinearity<SigmoidOp, T>)                                                                     \
  ACE_CUDA_KERNEL(NormNonlinearity<SiLUOp, T>)                                                                        \
  ACE_CUDA_KERNEL(NormNonlinearity<TanhOp, T>)                                                                        \
  ACE_CUDA_KERNEL(NormNonlinearity<GELUOp, T>)                                                                        \
  ACE_CUDA_KERNEL(NormNonlinearityBackward<ReLUOp, T>)                                                                \
  ACE_CUDA_KERNEL(NormNonlinearityBackward<SigmoidOp, T>)                                                             \
  ACE_CUDA_KERNEL(NormNonlinearityBackward<SiLUOp, T>)                                                                \
  ACE_CUDA_KERNEL(NormNonlinearityBackward<TanhOp, T>)                                                                \
  ACE_CUDA_KERNEL(NormNonlinearityBackward<GELUOp, T>)                                                                \
  ACE_CUDA_KERNEL(GateFields<T>)                                                                                      \
  ACE_CUDA_KERNEL(GateFieldsBackward<T>)                                                                              \
  ACE_CUDA_KERNEL(TensorProductContract<T>)                                                                           \
  ACE_CUDA_KERNEL(TensorProductContractBackward<T>)                                                                   \
  ACE_CUDA_KERNEL(SwishGate<T>)                                                                                       \
  ACE_CUDA_KERNEL(SwishGateBackward<T>)                                                                               \
  ACE_CUDA_KERNEL(SphericalHarmonics<T>)                                                                              \
  ACE_CUDA_KERNEL(BatchNormStatistics<T>)                                                                             \
  ACE_CUDA_KERNEL(BatchNormForward<T>)                                                                                \
  ACE_CUDA_KERNEL(BatchNormBackwardStatistics<T>)                                                                     \
  ACE_CUDA_KERNEL(BatchNormBackwardInput<T>)                                                                          \
  ACE_CUDA_KERNEL(Conv2dForward<T>)                                                                                   \
  ACE_CUDA_KERNEL(Conv2dBackwardInput<T>)                                                                             \
  ACE_CUDA_KERNEL(Conv2dBackwardFilter<T>)                                                                            \
  ACE_CUDA_KERNEL(Conv2dBackwardBias<T>)                                                                              \
  ACE_CUDA_KERNEL(ConvBias<T>)                                                                                        \
  ACE_CUDA_KERNEL(Pool2dForward<T>)                                                                                   \
  ACE_CUDA_KERNEL(Pool2dBackward<T>)                                                                                  \
  ACE_CUDA_KERNEL(VectorNorms<T>)                                                                                     \
  ACE_CUDA_KERNEL(VectorRescale<T>)                                                                                   \
  ACE_CUDA_KERNEL(VectorRescaleBackward<T>)                                                                           \
  ACE_CUDA_KERNEL(VectorRescaleInputGrad<T>)                                                                          \
  ACE_CUDA_KERNEL(VNLeakyReLU<T>)                                                                                     \
  ACE_CUDA_KERNEL(VNLeakyReLUBackward<T>)                                                                             \
  ACE_CUDA_KERNEL(VNInvariant<T>)                                                                                     \
  ACE_CUDA_KERNEL(VNInvariantBackward<T>)                                                                             \
  ACE_CUDA_KERNEL(EgnnEdgeInput<T>)                                                                                   \
  ACE_CUDA_KERNEL(EgnnAggregate<T>)                                                                                   \
  ACE_CUDA_KERNEL(EgnnAggregateBackward<T>)                                                                           \
  ACE_CUDA_KERNEL(EgnnEdgeInputBackwardNodes<T>)                                                                      \
  ACE_CUDA_KERNEL(EgnnRadialGrad<T>)                                                                                  \
  ACE_CUDA_BLOCK_KERNEL(EgnnLayerForward<T>)                                                                          \
  ACE_CUDA_BLOCK_KERNEL(EgnnLayerBackward<T>)                                                                         \
  ACE_CUDA_KERNEL(ElementwiseLoss<SquaredError, T>)                                                                   \
  ACE_CUDA_KERNEL(ElementwiseLoss<AbsoluteError, T>)                                                                  \
  ACE_CUDA_KERNEL(SoftmaxCrossEntropy<T>)                                                                             \
  ACE_CUDA_KERNEL(LossFinal<T>)                                                                                       \
  ACE_CUDA_KERNEL(ConstraintTerms<T>)                                                                                 \
  ACE_CUDA_KERNEL(SgdUpdate<T>)                                                                                       \
  ACE_CUDA_KERNEL(AdamUpdate<T>)                                                                                      \
  ACE_CUDA_KERNEL(AdamUpdateMany<T>)                                                                                  \
  ACE_CUDA_KERNEL(FillMany<T>)
