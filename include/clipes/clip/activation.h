#pragma once
/// The MLP activation of CLIP's transformer blocks, and its names (transformers' hidden_act
/// names, the generate config's "model_act", --model-act). Light: configs include it.

#include <string_view>

#include "clipes/core/config_fields.h"

namespace clipes::clip {

enum class Activation {
  kQuickGelu,  ///< x · sigmoid(1.702 x): OpenAI's CLIP, open_clip's *-quickgelu models
  kGelu,       ///< exact (erf) GELU: open_clip's LAION models, transformers "gelu"
};
constexpr auto enum_names(Activation) {
  return config::EnumNames<Activation, 2>{
      {{"quick_gelu", Activation::kQuickGelu}, {"gelu", Activation::kGelu}}};
}
/// "quick_gelu", "gelu".
inline std::string_view to_string(Activation activation) { return config::enum_name(activation); }

}  // namespace clipes::clip
