#pragma once
/// Built-in class names of the two benchmarks, in dataset order: PASCAL VOC 2012 (20 classes) and
/// MS COCO 2014 (80 classes, COCO category ids sorted ascending). Ground-truth masks store class
/// index k as k + 1 and background as 0; with_background() gives the names in that id order.

#include <string>
#include <vector>

namespace clipes::data {

/// The 20 VOC class names, aeroplane ... tvmonitor (class index 0..19).
const std::vector<std::string>& voc_class_names();

/// The 80 COCO class names, person ... toothbrush (class index 0..79).
const std::vector<std::string>& coco_class_names();

/// "background" followed by `names`: entry i is the name of mask id i.
std::vector<std::string> with_background(const std::vector<std::string>& names);

}  // namespace clipes::data
