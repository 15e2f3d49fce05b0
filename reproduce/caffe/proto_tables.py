"""The subset of ``caffe.proto`` this suite understands: messages, field numbers, types, defaults.

Written as a compact table, one line per field: ``<number> <name> [repeated|packed] <type> [= <default>]``.
A type is a scalar (``int32 int64 uint32 uint64 float double bool string bytes``), an enum
declared in ``ENUMS`` or a message declared here. ``packed`` means a repeated scalar that
Caffe declares ``[packed = true]`` (written packed; readers accept both encodings, as
protobuf does). Field numbers are those of BVLC caffe.proto, so files written by Caffe are
read and files written here are read by Caffe.

``extension`` marks a field that is this project's, not Caffe's: its number (50000 and up)
lies above every number caffe.proto uses in any message (the largest is
``V1LayerParameter``'s 1002), so it can never collide with a Caffe field. The project's own ``Net`` honours it; the prototxt and
caffemodel writers refuse a message that sets one, naming the layer
(``schema.refuse_project_extensions``), because Caffe would reject the prototxt (unknown
field) and silently drop the field from a caffemodel. The extensions, both written by
``reproduce.rarefy`` (CVPR 2015 Sec. 3.2), both on ``PoolingParameter``: ``dilation``
(50000), dilated pooling, on the poolings after the rarefied layer; ``rarefaction``
(50001), on a rarefied ceil-mode pooling, the factor its stride was divided by, so that
Caffe's ceil rounding is applied at the coarse stride (see ``reproduce.net.layers.pooling``).

``fork`` marks a field of a Caffe fork that OpenCV 4.x's Caffe importer also reads (DeepLab's
``interp_param``, SSD's ``norm_param``, ``permute_param``, ``prior_box_param``,
``detection_output_param``), at the fork's own number, so that the fork's Caffe reads what the
writers write — unlike ``extension`` fields the writers keep them. One fork number collides
with a later BVLC field: DeepLab's ``interp_param`` is 143, which BVLC gave to ``input_param``;
``FORK_NUMBERS_BY_TYPE`` says which field such a number is on a layer of the fork's type (the
binary reader consults it; protobuf writes ``type``, field 2, before it).

The data layers' messages (LevelDB/LMDB, images, HDF5, windows, ``Datum``) are declared in
full: ``reproduce.net.layers`` runs those layers.
"""

ENUMS = """
Phase                      TRAIN=0 TEST=1
FillerParameter.VarianceNorm FAN_IN=0 FAN_OUT=1 AVERAGE=2
SolverParameter.SnapshotFormat HDF5=0 BINARYPROTO=1
SolverParameter.SolverMode CPU=0 GPU=1
SolverParameter.SolverType SGD=0 NESTEROV=1 ADAGRAD=2 RMSPROP=3 ADADELTA=4 ADAM=5
ParamSpec.DimCheckMode     STRICT=0 PERMISSIVE=1
LossParameter.NormalizationMode FULL=0 VALID=1 BATCH_SIZE=2 NONE=3
Engine                     DEFAULT=0 CAFFE=1 CUDNN=2
DataParameter.DB           LEVELDB=0 LMDB=1
EltwiseParameter.EltwiseOp PROD=0 SUM=1 MAX=2
HingeLossParameter.Norm    L1=1 L2=2
LRNParameter.NormRegion    ACROSS_CHANNELS=0 WITHIN_CHANNEL=1
PoolingParameter.PoolMethod MAX=0 AVE=1 STOCHASTIC=2
PoolingParameter.RoundMode CEIL=0 FLOOR=1
ReductionParameter.ReductionOp SUM=1 ASUM=2 SUMSQ=3 MEAN=4
PriorBoxParameter.CodeType CORNER=1 CENTER_SIZE=2 CORNER_SIZE=3
V1LayerParameter.LayerType NONE=0 ABSVAL=35 ACCURACY=1 ARGMAX=30 BNLL=2 CONCAT=3 CONTRASTIVE_LOSS=37
    CONVOLUTION=4 DATA=5 DECONVOLUTION=39 DROPOUT=6 DUMMY_DATA=32 EUCLIDEAN_LOSS=7 ELTWISE=25 EXP=38
    FLATTEN=8 HDF5_DATA=9 HDF5_OUTPUT=10 HINGE_LOSS=28 IM2COL=11 IMAGE_DATA=12 INFOGAIN_LOSS=13
    INNER_PRODUCT=14 LRN=15 MEMORY_DATA=29 MULTINOMIAL_LOGISTIC_LOSS=16 MVN=34 POOLING=17 POWER=26
    RELU=18 SIGMOID=19 SIGMOID_CROSS_ENTROPY_LOSS=27 SILENCE=36 SOFTMAX=20 SOFTMAX_LOSS=21 SPLIT=22
    SLICE=33 TANH=23 WINDOW_DATA=24 THRESHOLD=31
"""

MESSAGES = """
BlobShape
  1 dim packed int64

BlobProto
  7 shape BlobShape
  5 data packed float
  6 diff packed float
  8 double_data packed double
  9 double_diff packed double
  1 num int32 = 0
  2 channels int32 = 0
  3 height int32 = 0
  4 width int32 = 0

BlobProtoVector
  1 blobs repeated BlobProto

Datum
  1 channels int32
  2 height int32
  3 width int32
  4 data bytes
  5 label int32
  6 float_data repeated float
  7 encoded bool = false

FillerParameter
  1 type string = constant
  2 value float = 0
  3 min float = 0
  4 max float = 1
  5 mean float = 0
  6 std float = 1
  7 sparse int32 = -1
  8 variance_norm FillerParameter.VarianceNorm = FAN_IN

NetParameter
  1 name string
  3 input repeated string
  8 input_shape repeated BlobShape
  4 input_dim repeated int32
  5 force_backward bool = false
  6 state NetState
  7 debug_info bool = false
  100 layer repeated LayerParameter
  2 layers repeated V1LayerParameter

SolverParameter
  24 net string
  25 net_param NetParameter
  1 train_net string
  2 test_net repeated string
  21 train_net_param NetParameter
  22 test_net_param repeated NetParameter
  26 train_state NetState
  27 test_state repeated NetState
  3 test_iter repeated int32
  4 test_interval int32 = 0
  19 test_compute_loss bool = false
  32 test_initialization bool = true
  5 base_lr float
  6 display int32
  33 average_loss int32 = 1
  7 max_iter int32
  36 iter_size int32 = 1
  8 lr_policy string
  9 gamma float
  10 power float
  11 momentum float
  12 weight_decay float
  29 regularization_type string = L2
  13 stepsize int32
  34 stepvalue repeated int32
  35 clip_gradients float = -1
  14 snapshot int32 = 0
  15 snapshot_prefix string
  16 snapshot_diff bool = false
  37 snapshot_format SolverParameter.SnapshotFormat = BINARYPROTO
  17 solver_mode SolverParameter.SolverMode = GPU
  18 device_id int32 = 0
  20 random_seed int64 = -1
  40 type string = SGD
  31 delta float = 1e-8
  39 momentum2 float = 0.999
  38 rms_decay float = 0.99
  23 debug_info bool = false
  28 snapshot_after_train bool = true
  30 solver_type SolverParameter.SolverType = SGD
  41 layer_wise_reduce bool = true
  42 weights repeated string

SolverState
  1 iter int32
  2 learned_net string
  3 history repeated BlobProto
  4 current_step int32 = 0

NetState
  1 phase Phase = TEST
  2 level int32 = 0
  3 stage repeated string

NetStateRule
  1 phase Phase
  2 min_level int32
  3 max_level int32
  4 stage repeated string
  5 not_stage repeated string

ParamSpec
  1 name string
  2 share_mode ParamSpec.DimCheckMode
  3 lr_mult float = 1
  4 decay_mult float = 1

LayerParameter
  1 name string
  2 type string
  3 bottom repeated string
  4 top repeated string
  10 phase Phase
  5 loss_weight repeated float
  6 param repeated ParamSpec
  7 blobs repeated BlobProto
  11 propagate_down repeated bool
  8 include repeated NetStateRule
  9 exclude repeated NetStateRule
  100 transform_param TransformationParameter
  101 loss_param LossParameter
  102 accuracy_param AccuracyParameter
  103 argmax_param ArgMaxParameter
  139 batch_norm_param BatchNormParameter
  141 bias_param BiasParameter
  148 clip_param ClipParameter
  104 concat_param ConcatParameter
  105 contrastive_loss_param ContrastiveLossParameter
  106 convolution_param ConvolutionParameter
  144 crop_param CropParameter
  107 data_param DataParameter
  108 dropout_param DropoutParameter
  109 dummy_data_param DummyDataParameter
  110 eltwise_param EltwiseParameter
  140 elu_param ELUParameter
  137 embed_param EmbedParameter
  111 exp_param ExpParameter
  135 flatten_param FlattenParameter
  112 hdf5_data_param HDF5DataParameter
  113 hdf5_output_param HDF5OutputParameter
  114 hinge_loss_param HingeLossParameter
  115 image_data_param ImageDataParameter
  116 infogain_loss_param InfogainLossParameter
  117 inner_product_param InnerProductParameter
  143 input_param InputParameter
  134 log_param LogParameter
  118 lrn_param LRNParameter
  119 memory_data_param MemoryDataParameter
  120 mvn_param MVNParameter
  145 parameter_param ParameterParameter
  121 pooling_param PoolingParameter
  122 power_param PowerParameter
  131 prelu_param PReLUParameter
  130 python_param PythonParameter
  146 recurrent_param RecurrentParameter
  136 reduction_param ReductionParameter
  123 relu_param ReLUParameter
  133 reshape_param ReshapeParameter
  142 scale_param ScaleParameter
  124 sigmoid_param SigmoidParameter
  125 softmax_param SoftmaxParameter
  132 spp_param SPPParameter
  126 slice_param SliceParameter
  147 swish_param SwishParameter
  127 tanh_param TanHParameter
  128 threshold_param ThresholdParameter
  138 tile_param TileParameter
  129 window_data_param WindowDataParameter
  143 interp_param fork InterpParameter
  202 permute_param fork PermuteParameter
  203 prior_box_param fork PriorBoxParameter
  204 detection_output_param fork DetectionOutputParameter
  206 norm_param fork NormalizeParameter

TransformationParameter
  1 scale float = 1
  2 mirror bool = false
  3 crop_size uint32 = 0
  4 mean_file string
  5 mean_value repeated float
  6 force_color bool = false
  7 force_gray bool = false

LossParameter
  1 ignore_label int32
  3 normalization LossParameter.NormalizationMode = VALID
  2 normalize bool

AccuracyParameter
  1 top_k uint32 = 1
  2 axis int32 = 1
  3 ignore_label int32

ArgMaxParameter
  1 out_max_val bool = false
  2 top_k uint32 = 1
  3 axis int32

ClipParameter
  1 min float
  2 max float

ConcatParameter
  2 axis int32 = 1
  1 concat_dim uint32 = 1

BatchNormParameter
  1 use_global_stats bool
  2 moving_average_fraction float = 0.999
  3 eps float = 1e-5

BiasParameter
  1 axis int32 = 1
  2 num_axes int32 = 1
  3 filler FillerParameter

ContrastiveLossParameter
  1 margin float = 1
  2 legacy_version bool = false

ConvolutionParameter
  1 num_output uint32
  2 bias_term bool = true
  3 pad repeated uint32
  4 kernel_size repeated uint32
  6 stride repeated uint32
  18 dilation repeated uint32
  9 pad_h uint32 = 0
  10 pad_w uint32 = 0
  11 kernel_h uint32
  12 kernel_w uint32
  13 stride_h uint32
  14 stride_w uint32
  5 group uint32 = 1
  7 weight_filler FillerParameter
  8 bias_filler FillerParameter
  15 engine Engine = DEFAULT
  16 axis int32 = 1
  17 force_nd_im2col bool = false

CropParameter
  1 axis int32 = 2
  2 offset repeated uint32

DataParameter
  1 source string
  4 batch_size uint32
  7 rand_skip uint32 = 0
  8 backend DataParameter.DB = LEVELDB
  2 scale float = 1
  3 mean_file string
  5 crop_size uint32 = 0
  6 mirror bool = false
  9 force_encoded_color bool = false
  10 prefetch uint32 = 4

DropoutParameter
  1 dropout_ratio float = 0.5

DummyDataParameter
  1 data_filler repeated FillerParameter
  6 shape repeated BlobShape
  2 num repeated uint32
  3 channels repeated uint32
  4 height repeated uint32
  5 width repeated uint32

EltwiseParameter
  1 operation EltwiseParameter.EltwiseOp = SUM
  2 coeff repeated float
  3 stable_prod_grad bool = true

ELUParameter
  1 alpha float = 1

EmbedParameter
  1 num_output uint32
  2 input_dim uint32
  3 bias_term bool = true
  4 weight_filler FillerParameter
  5 bias_filler FillerParameter

ExpParameter
  1 base float = -1
  2 scale float = 1
  3 shift float = 0

FlattenParameter
  1 axis int32 = 1
  2 end_axis int32 = -1

HDF5DataParameter
  1 source string
  2 batch_size uint32
  3 shuffle bool = false

HDF5OutputParameter
  1 file_name string

HingeLossParameter
  1 norm HingeLossParameter.Norm = L1

ImageDataParameter
  1 source string
  4 batch_size uint32 = 1
  7 rand_skip uint32 = 0
  8 shuffle bool = false
  9 new_height uint32 = 0
  10 new_width uint32 = 0
  11 is_color bool = true
  2 scale float = 1
  3 mean_file string
  5 crop_size uint32 = 0
  6 mirror bool = false
  12 root_folder string

InfogainLossParameter
  1 source string
  2 axis int32 = 1

InnerProductParameter
  1 num_output uint32
  2 bias_term bool = true
  3 weight_filler FillerParameter
  4 bias_filler FillerParameter
  5 axis int32 = 1
  6 transpose bool = false

InputParameter
  1 shape repeated BlobShape

LogParameter
  1 base float = -1
  2 scale float = 1
  3 shift float = 0

LRNParameter
  1 local_size uint32 = 5
  2 alpha float = 1
  3 beta float = 0.75
  4 norm_region LRNParameter.NormRegion = ACROSS_CHANNELS
  5 k float = 1
  6 engine Engine = DEFAULT

MemoryDataParameter
  1 batch_size uint32
  2 channels uint32
  3 height uint32
  4 width uint32

MVNParameter
  1 normalize_variance bool = true
  2 across_channels bool = false
  3 eps float = 1e-9

ParameterParameter
  1 shape BlobShape

PoolingParameter
  1 pool PoolingParameter.PoolMethod = MAX
  4 pad uint32 = 0
  9 pad_h uint32 = 0
  10 pad_w uint32 = 0
  2 kernel_size uint32
  5 kernel_h uint32
  6 kernel_w uint32
  3 stride uint32 = 1
  7 stride_h uint32
  8 stride_w uint32
  11 engine Engine = DEFAULT
  12 global_pooling bool = false
  13 round_mode PoolingParameter.RoundMode = CEIL
  50000 dilation extension uint32 = 1
  50001 rarefaction extension uint32 = 1

PowerParameter
  1 power float = 1
  2 scale float = 1
  3 shift float = 0

PReLUParameter
  1 filler FillerParameter
  2 channel_shared bool = false

PythonParameter
  1 module string
  2 layer string
  3 param_str string
  4 share_in_parallel bool = false

RecurrentParameter
  1 num_output uint32 = 0
  2 weight_filler FillerParameter
  3 bias_filler FillerParameter
  4 debug_info bool = false
  5 expose_hidden bool = false

ReductionParameter
  1 operation ReductionParameter.ReductionOp = SUM
  2 axis int32 = 0
  3 coeff float = 1

ReLUParameter
  1 negative_slope float = 0
  2 engine Engine = DEFAULT

ReshapeParameter
  1 shape BlobShape
  2 axis int32 = 0
  3 num_axes int32 = -1

ScaleParameter
  1 axis int32 = 1
  2 num_axes int32 = 1
  3 filler FillerParameter
  4 bias_term bool = false
  5 bias_filler FillerParameter

SigmoidParameter
  1 engine Engine = DEFAULT

SliceParameter
  3 axis int32 = 1
  2 slice_point repeated uint32
  1 slice_dim uint32 = 1

SoftmaxParameter
  1 engine Engine = DEFAULT
  2 axis int32 = 1

SPPParameter
  1 pyramid_height uint32
  2 pool PoolingParameter.PoolMethod = MAX
  6 engine Engine = DEFAULT

SwishParameter
  1 beta float = 1

TanHParameter
  1 engine Engine = DEFAULT

ThresholdParameter
  1 threshold float = 0

TileParameter
  1 axis int32 = 1
  2 tiles int32

WindowDataParameter
  1 source string
  2 scale float = 1
  3 mean_file string
  4 batch_size uint32
  5 crop_size uint32 = 0
  6 mirror bool = false
  7 fg_threshold float = 0.5
  8 bg_threshold float = 0.5
  9 fg_fraction float = 0.25
  10 context_pad uint32 = 0
  11 crop_mode string = warp
  12 cache_images bool = false
  13 root_folder string

InterpParameter
  1 height int32 = 0
  2 width int32 = 0
  3 zoom_factor int32 = 1
  4 shrink_factor int32 = 1
  5 pad_beg int32 = 0
  6 pad_end int32 = 0

PermuteParameter
  1 order repeated uint32

NormalizeParameter
  1 across_spatial bool = true
  2 scale_filler FillerParameter
  3 channel_shared bool = true
  4 eps float = 1e-10

PriorBoxParameter
  1 min_size repeated float
  2 max_size repeated float
  3 aspect_ratio repeated float
  4 flip bool = true
  5 clip bool = false
  6 variance repeated float
  7 img_size uint32
  8 img_h uint32
  9 img_w uint32
  10 step float
  11 step_h float
  12 step_w float
  13 offset float = 0.5

NonMaximumSuppressionParameter
  1 nms_threshold float = 0.3
  2 top_k int32
  3 eta float = 1

SaveOutputParameter
  1 output_directory string
  2 output_name_prefix string
  3 output_format string
  4 label_map_file string
  5 name_size_file string
  6 num_test_image uint32

DetectionOutputParameter
  1 num_classes uint32
  2 share_location bool = true
  3 background_label_id int32 = 0
  4 nms_param NonMaximumSuppressionParameter
  5 save_output_param SaveOutputParameter
  6 code_type PriorBoxParameter.CodeType = CORNER
  8 variance_encoded_in_target bool = false
  7 keep_top_k int32 = -1
  9 confidence_threshold float
  10 visualize bool = false
  11 visualize_threshold float
  12 save_file string

V1LayerParameter
  2 bottom repeated string
  3 top repeated string
  4 name string
  32 include repeated NetStateRule
  33 exclude repeated NetStateRule
  5 type V1LayerParameter.LayerType
  6 blobs repeated BlobProto
  1001 param repeated string
  1002 blob_share_mode repeated ParamSpec.DimCheckMode
  7 blobs_lr repeated float
  8 weight_decay repeated float
  35 loss_weight repeated float
  27 accuracy_param AccuracyParameter
  23 argmax_param ArgMaxParameter
  9 concat_param ConcatParameter
  40 contrastive_loss_param ContrastiveLossParameter
  10 convolution_param ConvolutionParameter
  11 data_param DataParameter
  12 dropout_param DropoutParameter
  26 dummy_data_param DummyDataParameter
  24 eltwise_param EltwiseParameter
  41 exp_param ExpParameter
  13 hdf5_data_param HDF5DataParameter
  14 hdf5_output_param HDF5OutputParameter
  29 hinge_loss_param HingeLossParameter
  15 image_data_param ImageDataParameter
  16 infogain_loss_param InfogainLossParameter
  17 inner_product_param InnerProductParameter
  18 lrn_param LRNParameter
  22 memory_data_param MemoryDataParameter
  34 mvn_param MVNParameter
  19 pooling_param PoolingParameter
  21 power_param PowerParameter
  30 relu_param ReLUParameter
  38 sigmoid_param SigmoidParameter
  39 softmax_param SoftmaxParameter
  31 slice_param SliceParameter
  37 tanh_param TanHParameter
  25 threshold_param ThresholdParameter
  20 window_data_param WindowDataParameter
  36 transform_param TransformationParameter
  42 loss_param LossParameter
"""

FORK_NUMBERS_BY_TYPE = {"Interp": {("LayerParameter", 143): "interp_param"}}
